"""RunConfig: every setting of a run in one typed, frozen object, built once.

The CLI builds it from the flags (`from_args`), the Python API from keyword arguments
(`RunConfig(job="extract", model=..., ...)`); jobs, runners and the engine read it and never
write results back onto it. Field names are the CLI's flag names.

Imports only `resnet.errors`: a RunConfig is built (and its fixed option lists checked)
without Paddle, OpenCV or any registry's modules. The settings that name a registry entry
(--format, --runner) are checked where that registry is used (jobs/extract.py, the runner's
job), the one place each is checked.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from resnet.errors import ResnetError

#: `--engine`: the compiled Paddle Inference model (fast, cached) or the dygraph reference
ENGINES = ("inference", "dygraph")
#: `--precision`: fp32 is the checked default; the others are opt-in (CPU bf16, GPU fp16,
#: int8 calibrated on images: CPU, or GPU with TensorRT)
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
#: `--to` for --job=export
EXPORT_TARGETS = ("paddle_inference", "onnx")
#: `--pool`: (C, H, W) layers globally pooled to (C,) inside the network, or kept whole
POOLS = ("none", "avg", "max")
#: `--dtype`: how features are stored in the binary formats (computed in float32 always)
DTYPES = ("float32", "float16")
#: `--compression` of HDF5 datasets (h5py's own filters; chunked by rows either way)
COMPRESSIONS = ("none", "lzf", "gzip")


@dataclass(frozen=True)
class RunConfig:
    job: str = "extract"
    model: str | None = None
    arch: str | None = None
    layer_num: int | None = None
    variant: str | None = None
    data: str | None = None
    labels_from_folders: bool = False
    mean: str | None = None
    multi_crop: bool = False
    output_layer: str | None = None  # comma-separated, as the flag
    output_dir: str = "output"
    use_gpu: bool | None = None
    batch_size: int = 16
    format: str = "hdf5"
    pool: str = "none"
    dtype: str = "float32"
    compression: str = "none"
    no_space_check: bool = False
    output_file: str | None = None
    top_k: int = 5
    strict: bool = False
    resume: bool = False
    overwrite: bool = False
    from_format: str | None = None
    input: str | None = None
    to: str | None = None
    shard: tuple | None = None
    workers: int | None = None
    runner: str = "local"
    ray_address: str | None = None
    actors: tuple | None = None  # (min, max) engine actors of --runner=ray
    cpus_per_actor: float | None = None
    gpus_per_actor: float | None = None
    engine: str = "inference"
    threads: int = 0
    trt: bool = False
    precision: str = "fp32"
    check: bool = False
    reduced_decode: bool = False
    calibration: str | None = None
    output: str | None = None
    compact: bool = False
    seed: int = 0
    clear: bool = False
    debug: bool = False

    def __post_init__(self):
        if isinstance(self.output_layer, (list, tuple)):  # the API takes a list of names
            object.__setattr__(self, "output_layer", ",".join(self.output_layer))
        for name in ("batch_size", "top_k"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ResnetError(f"{name} must be at least 1, got {value!r}")
        if self.engine not in ENGINES:
            raise ResnetError(f"unknown engine {self.engine!r}: choose one of "
                              f"{', '.join(ENGINES)}")
        for name, value, allowed in (("precision", self.precision, PRECISIONS),
                                     ("pool", self.pool, POOLS), ("dtype", self.dtype, DTYPES),
                                     ("compression", self.compression, COMPRESSIONS)):
            if value not in allowed:
                raise ResnetError(f"unknown {name} {value!r}: choose one of "
                                  f"{', '.join(allowed)}")

        if self.shard is not None:
            try:
                i, n = (int(v) for v in self.shard)
                ok = 1 <= i <= n
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ResnetError(f"shard {self.shard!r}: expected (I, N) with 1 <= I <= N")
        if isinstance(self.actors, (int, str)):  # the API takes 3, "3" or "1-4" as the flag
            object.__setattr__(self, "actors", parse_actors(str(self.actors)))
        if self.actors is not None and not (1 <= self.actors[0] <= self.actors[1]):
            raise ResnetError(f"actors {self.actors!r}: expected N or MIN-MAX with "
                              "1 <= MIN <= MAX")
        for name in ("cpus_per_actor", "gpus_per_actor"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ResnetError(f"{name} must be 0 or more, got {value!r}")
        # `format` and `runner` name registry entries: the job that loads the registry refuses
        # an unknown name (naming the registered ones), so building a RunConfig stays light

    @classmethod
    def from_args(cls, namespace) -> "RunConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in vars(namespace).items() if k in names})

    @classmethod
    def names(cls) -> set[str]:
        """Every setting's name (the flags' names)."""
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_options(cls, job: str, **options) -> "RunConfig":
        """For the Python API: unknown option names are an error, not silently ignored."""
        names = cls.names()
        unknown = sorted(set(options) - names)
        if unknown:
            raise ResnetError(f"unknown option(s) {', '.join(unknown)}; known: "
                              f"{', '.join(sorted(names - {'job'}))}")
        return cls(job=job, **options)

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    def layers_or(self, default) -> list[str]:
        """The requested layer names, else `default` (a list)."""
        return self.output_layer.split(",") if self.output_layer else list(default)


def parse_actors(text: str) -> tuple[int, int]:
    """`--actors`: "N" (a fixed pool) or "MIN-MAX" (Ray grows the pool within the range)."""
    try:
        low, dash, high = text.strip().partition("-")
        pair = (int(low), int(high if dash else low))
    except ValueError:
        raise ResnetError(f"actors {text!r}: expected N or MIN-MAX, such as 4 or 2-8") from None
    if not 1 <= pair[0] <= pair[1]:
        raise ResnetError(f"actors {text!r}: expected N or MIN-MAX with 1 <= MIN <= MAX")
    return pair
