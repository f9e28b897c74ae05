"""RunConfig: every setting of a run in one typed, frozen object, built once; and the
per-concern settings derived from it, which is what the parts below the jobs receive.

The CLI builds a RunConfig from the flags (`from_args`), the Python API from keyword
arguments (`RunConfig.from_options(job, model=..., ...)`); field names are the CLI's flag
names. Building it builds (and so checks) one frozen settings object per concern:
`model_settings` (which network and parameters), `input_settings` (images to batches),
`engine_settings` (how the network runs), `output_settings` (where and how features are
written) and `ray_settings` (the Ray cluster and its actor pool). Each settings class checks
its own fields, the one place each setting is checked, so a bad value is refused when the
RunConfig is built, before anything runs. Jobs read the RunConfig and hand each part the
settings of its concern: the engine builder gets EngineSettings, the decoders
InputSettings, the sinks and the journal OutputSettings. Nothing writes results back.

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
PRECISIONS = ("fp32", "bf16", "fp16", "int8", "auto")
#: `--to` for --job=export
EXPORT_TARGETS = ("paddle_inference", "onnx")
#: `--pool`: (C, H, W) layers globally pooled to (C,) inside the network, or kept whole
POOLS = ("none", "avg", "max")
#: `--dtype`: how features are stored in the binary formats (computed in float32 always)
DTYPES = ("float32", "float16")
#: `--compression` of HDF5 datasets (h5py's own filters; chunked by rows either way)
COMPRESSIONS = ("none", "lzf", "gzip")


def _at_least_one(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ResnetError(f"{name} must be at least 1, got {value!r}")


def _one_of(name: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise ResnetError(f"unknown {name} {value!r}: choose one of {', '.join(allowed)}")


class _Settings:
    """What every settings class shares: built from a RunConfig's same-named fields."""

    @classmethod
    def of(cls, config):
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ModelSettings(_Settings):
    """Which network and parameters: the model folder, the architecture flags over its
    model.json, and the mean file over its preprocessing (modelio.loaded.resolve reads
    these). Checked when the folder is read: nothing here can be checked without I/O."""

    model: str | None = None
    arch: str | None = None
    layer_num: int | None = None
    variant: str | None = None
    mean: str | None = None
    #: the weights file of a registry entry (--model=NAME), fetched by hand
    weights_file: str | None = None


@dataclass(frozen=True)
class InputSettings(_Settings):
    """From --data to batches of crops: the list, its labels, the crops per image, the
    decoding workers, the batch size and whether a bad image stops the run."""

    data: str | None = None
    labels_from_folders: bool = False
    multi_crop: bool = False
    workers: int | None = None
    reduced_decode: bool = False
    batch_size: int = 16
    strict: bool = False

    def __post_init__(self):
        _at_least_one("batch_size", self.batch_size)


@dataclass(frozen=True)
class EngineSettings(_Settings):
    """How the network runs: engine, device, threads, TensorRT, precision (with its int8
    calibration list), the --check comparison and in-network pooling. Whether a combination
    fits the device is checked once the device is chosen (runtime.engine.check_options)."""

    engine: str = "inference"
    use_gpu: bool | None = None
    threads: int = 0
    trt: bool = False
    precision: str = "fp32"
    check: bool = False
    calibration: str | None = None
    pool: str = "none"

    def __post_init__(self):
        _one_of("engine", self.engine, ENGINES)
        _one_of("precision", self.precision, PRECISIONS)
        _one_of("pool", self.pool, POOLS)


@dataclass(frozen=True)
class OutputSettings(_Settings):
    """Where and how results are written: the folder (or its shard), the format, stored
    dtype and compression, resume / overwrite, the free-space check, predict's CSV file.
    `format` names a registry entry: the job that loads the registry checks it."""

    output_dir: str = "output"
    format: str = "hdf5"
    dtype: str = "float32"
    compression: str = "none"
    resume: bool = False
    overwrite: bool = False
    shard: tuple | None = None
    no_space_check: bool = False
    output_file: str | None = None

    def __post_init__(self):
        _one_of("dtype", self.dtype, DTYPES)
        _one_of("compression", self.compression, COMPRESSIONS)
        if self.shard is not None:
            given = self.shard  # (I, N), or "I/N" as --shard spells it (the Python API)
            try:
                i, n = (int(v) for v in (given.split("/") if isinstance(given, str) else given))
                ok = 1 <= i <= n
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ResnetError(f"shard {given!r}: expected I/N with 1 <= I <= N")
            object.__setattr__(self, "shard", (i, n))


@dataclass(frozen=True)
class RaySettings(_Settings):
    """--runner=ray's cluster and engine actor pool; `actors` is (min, max), and also taken
    as 3, "3" or "1-4" as the flag."""

    ray_address: str | None = None
    actors: tuple | None = None
    cpus_per_actor: float | None = None
    gpus_per_actor: float | None = None

    def __post_init__(self):
        if isinstance(self.actors, (int, str)):
            object.__setattr__(self, "actors", parse_actors(str(self.actors)))
        if self.actors is not None and not (1 <= self.actors[0] <= self.actors[1]):
            raise ResnetError(f"actors {self.actors!r}: expected N or MIN-MAX with "
                              "1 <= MIN <= MAX")
        for name in ("cpus_per_actor", "gpus_per_actor"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ResnetError(f"{name} must be 0 or more, got {value!r}")


@dataclass(frozen=True)
class RunConfig:
    """Every flag, flat. `model_settings`, `input_settings`, `engine_settings`,
    `output_settings` and `ray_settings` (not fields: derived, and checked, when it is
    built) are the per-concern views the jobs hand down. The fields no settings class owns
    are the job's own (top_k, output_layer, the convert / export / diagram / cache flags)
    or the run's (job, runner, debug)."""

    job: str = "extract"
    model: str | None = None
    weights_file: str | None = None
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
        # each concern checks its own fields (in this order: the first bad one is reported)
        derived = {"input_settings": InputSettings.of(self)}
        _at_least_one("top_k", self.top_k)
        derived.update(engine_settings=EngineSettings.of(self),
                       output_settings=OutputSettings.of(self),
                       ray_settings=RaySettings.of(self), model_settings=ModelSettings.of(self))
        object.__setattr__(self, "actors", derived["ray_settings"].actors)  # as normalized
        object.__setattr__(self, "shard", derived["output_settings"].shard)  # "I/N" -> (I, N)
        for name, value in derived.items():
            object.__setattr__(self, name, value)
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
