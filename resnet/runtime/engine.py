"""Engines that run the network: Paddle Inference (fast, default) or the dygraph reference.

The inference engine compiles the spec's network for the requested output layers once and
caches it on disk, keyed by the model's parameter checksum, the depth and variant, the layers
and the Paddle version, so later runs start in about a second.

CPU: Paddle Inference's OpenVINO subgraph engine (shipped in the paddlepaddle 3.x wheel) runs
the whole graph, measured faster here than Paddle's own oneDNN kernels (docs/engine_notes.md,
the speed table in docs/performance.md); oneDNN with the IR passes is the fallback (RESNET_CPU_BACKEND=onednn
forces it). Both are fp32 by default and checked against the dygraph reference: OpenVINO's CPU
plugin would pick bf16 on CPUs with AVX512-BF16/AMX unless told, so the precision hint is
always set explicitly, and oneDNN's fpmath mode is pinned to strict. bf16 is an opt-in, and so
is int8: a model quantized from the fp32 one on calibration images (quantize.py), measured
against fp32 on them on first use; bf16 runs the fp32 model and is measured the same way.
For OpenVINO, int8's activations after ReLUs are unsigned (unsigned_int8), and without VNNI
the stem's weights have 7 bits (narrow_int8); where the engine
takes every core, an accepted int8 model is timed on first use as one process and as one
process per core (streams.py), and runs the faster way. Every batch's
outputs are checked for the traces of a failed run (InferenceEngine._guard). GPU
(paddlepaddle-gpu): cuDNN, optionally TensorRT (--trt) with fp16 or int8.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile

import numpy as np

from resnet.common import cpu
from resnet.modelio import params as params_io
from resnet.runtime import cache, quantize, static
from resnet.config import ENGINES, PRECISIONS
from resnet.errors import ResnetError, first_line
from resnet.runtime.paddle_env import GPU_HELP, paddle
from resnet.models.graph import Spec

log = logging.getLogger("resnet")
CPU_BACKENDS = ("openvino", "onednn")
BACKEND_ENV = "RESNET_CPU_BACKEND"
CACHE_ENV, CHECKED = cache.CACHE_ENV, cache.CHECKED
FORMAT = 2  # bump when the compiled layout changes, to invalidate old caches
#: max|engine - dygraph| / max|dygraph| allowed per layer by --check on its test batch (fp32:
#: the contract; GPU fp16: a sanity bound). CPU bf16 and int8 are measured on calibration
#: images instead (measure_precision): a relative error at the softmax of a noise input
#: says more about how peaked that softmax is than about the engine.
TOLERANCE = {"fp32": 1e-4, "fp16": 0.05}
#: TensorRT workspace; the GPU memory pool Paddle starts with (MB)
TRT_WORKSPACE = 1 << 30
#: the most int8 engine processes (stream_count)
MAX_STREAMS = 4
GPU_POOL_MB = 256


cache_root = cache.root


def cache_key(model_sha256: str, spec: Spec, layers: list[str], pool: str = "none",
              calibration: str | None = None, keep: tuple[int, ...] = (),
              unsigned: bool = False, narrow: bool = False) -> str:
    nodes = [(n.name, n.op, n.inputs, sorted(n.attrs.items()), n.shape) for n in spec]
    parts = [FORMAT, model_sha256, spec.layer_num, spec.variant, repr(nodes), layers,
             paddle.__version__]
    if pool != "none":  # unpooled entries keep the keys they always had
        parts.append(f"pool={pool}")
    if calibration:  # int8: quantized with ranges from these calibration images
        parts.append(f"int8={quantize.ALGO}:{quantize.VERSION}:{calibration}")
        if unsigned:  # u8 activations after ReLUs (OpenVINO's)
            parts.append("u8")
        if narrow:  # 7-bit weights where the input is signed (narrow_int8)
            parts.append("w7-signed")
        if keep:  # quantizable ops left in fp32 (int8_levels)
            parts.append(f"fp32={list(keep)}")
    blob = json.dumps(parts)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def calibration_checksum(images: np.ndarray) -> str:
    """sha256 of the preprocessed calibration tensor: same images, same recipe, same key."""
    return hashlib.sha256(np.ascontiguousarray(images, np.float32).tobytes()).hexdigest()


def compiled_model(model_dir: str, spec: Spec, layers: list[str], model_sha256: str,
                   pool: str = "none", calibration: np.ndarray | None = None,
                   keep: tuple[int, ...] = (), unsigned: bool = False,
                   narrow: bool = False) -> str:
    """The cached PREFIX of the compiled model, compiling it first on a miss; with
    `calibration` images, the int8 model quantized from the fp32 one, with the quantizable
    ops at positions `keep` (quantizable_nodes) left in fp32 and, with `unsigned`, u8
    activations where they cannot be negative (OpenVINO's: unsigned_int8); with `narrow`,
    7-bit weights where the input can be negative (narrow_int8).

    Each entry is built in a temporary folder renamed into place, so concurrent runs (shards)
    never see a half-written model and a crash never leaves one behind.
    """
    info = {"model_sha256": model_sha256, "model_dir": os.path.abspath(model_dir),
            "arch": spec.arch, "layer_num": spec.layer_num, "variant": spec.variant,
            "layers": list(layers),
            "pool": pool, "paddle": paddle.__version__}
    fp32 = _entry(cache_key(model_sha256, spec, layers, pool), info,
                  f"compiling {spec.family.short(spec)} for {','.join(layers)}",
                  lambda prefix: static.export(model_dir, spec.arch, layers, prefix, pool))
    if calibration is None:
        return fp32
    sha = calibration_checksum(calibration)
    kept = f", {len(keep)} of its convolutions and fcs left out" if keep else ""
    return _entry(cache_key(model_sha256, spec, layers, pool, sha, keep, unsigned, narrow),
                  dict(info, precision="int8", calibration_sha256=sha,
                       calibration_images=len(calibration), fp32_ops=len(keep),
                       activations="u8" if unsigned else "s8",
                       weights="7-bit where the input is signed" if narrow else "8-bit"),
                  f"quantizing it to int8 ({quantize.ALGO} calibration on {len(calibration)} "
                  f"images{kept}, about a minute)",
                  lambda prefix: quantize.quantize(fp32, calibration, prefix, keep,
                                                   len(quantizable_nodes(spec, layers)),
                                                   unsigned, narrow))


def _entry(key: str, info: dict, doing: str, build) -> str:
    """The PREFIX of cache entry `key`, made by build(PREFIX) on a miss."""
    root = cache_root()
    folder = os.path.join(root, key)
    prefix = os.path.join(folder, "model")
    if _usable(folder):
        log.info("compiled model found in cache %s", folder)
        cache.touch(folder)
        return prefix
    log.info("%s (once; cached in %s)", doing, root)
    try:
        os.makedirs(root, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".compiling-", dir=root)
    except OSError as e:
        raise ResnetError(f"{root}: cannot write the engine cache ({e.strerror or e}); set "
                          f"{CACHE_ENV} to a writable folder or use --engine=dygraph") from None
    try:
        build(os.path.join(tmp, "model"))
        cache.describe(tmp, info)
        try:
            os.rename(tmp, folder)
        except OSError:  # another run finished the same model first: use theirs
            if not _usable(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cache.enforce_cap(keep=folder, where=root)
    return prefix


def _usable(folder: str) -> bool:
    """Whether cache entry `folder` is there and whole; a damaged one is removed (to be
    compiled again), and anything in its place that the cache did not make is refused."""
    if not os.path.lexists(folder):
        return False
    if not cache.is_entry(folder):
        if not os.path.lexists(folder):  # removed by a concurrent run just now
            return False
        raise ResnetError(cache.refusal(os.path.dirname(folder), os.path.basename(folder),
                                        "it is neither used nor replaced"))
    why = cache.damage(folder)
    if why is None:
        return True
    log.warning("engine cache entry %s is damaged (%s): removing it and compiling again",
                folder, why)
    try:
        cache.discard(folder)
    except OSError as e:
        raise ResnetError(f"{folder}: damaged engine cache entry ({why}) that cannot be "
                          f"removed ({e.strerror or e}); set {CACHE_ENV} to a writable "
                          "folder or use --engine=dygraph") from None
    return False


def check_key(backend: str, trt: bool, precision: str) -> str:
    """Where a compiled model's check for one way of running it is kept (cache.checks)."""
    return f"{backend}{'+trt' if trt else ''}/{precision}"


def int8_key(backend: str, trt: bool = False) -> str:
    """Where an int8 model's measurement on `backend` is kept (check_key, in int8_mode)."""
    return check_key(backend, trt, int8_mode(backend))


def bf16_key(backend: str, images: str) -> str:
    """Where bf16's measurement on `backend` is kept, in the fp32 model's entry: per set of
    calibration images (their calibration_checksum, `images`) and per CPU (AMX and
    AVX512-BF16 round differently)."""
    where = hashlib.sha256(f"{images}|{cpu.identity()}".encode())
    return check_key(backend, False, f"bf16-{where.hexdigest()[:12]}")


def unsigned_int8(backend: str) -> bool:
    """Whether int8 models for `backend` get u8 activations after ReLUs (quantize.py): only
    OpenVINO reads the zero points that make them; oneDNN's and TensorRT's int8 do not."""
    return backend == "openvino"


def narrow_int8(backend: str) -> bool:
    """Whether int8 models for `backend` get 7-bit weights in the ops whose input can be
    negative (quantize._narrow_weights): for OpenVINO where this CPU's int8 arithmetic is
    AVX2's pairwise 16-bit sums (no VNNI, no AMX, or kernels capped below them), which
    saturate on such inputs with 8-bit weights. oneDNN narrows those itself."""
    return backend == "openvino" and cpu.int8_support() == "avx2"


def int8_mode(backend: str) -> str:
    """How --precision=int8 runs on this CPU: "int8+bf16" when OpenVINO runs the ops left out
    of int8 (the sensitive ones int8_levels keeps, adds, pools) in bf16 because the CPU has
    it natively, else "int8" (those ops in fp32). Part of the check's key: the two are
    measured apart."""
    return "int8+bf16" if backend == "openvino" and cpu.bf16_support() else "int8"


def cpu_backend() -> str:
    """OpenVINO when this Paddle has it, else oneDNN; RESNET_CPU_BACKEND overrides."""
    wanted = os.environ.get(BACKEND_ENV, "").strip().lower()
    if wanted and wanted not in CPU_BACKENDS:
        raise ResnetError(f"{BACKEND_ENV}={wanted!r}: choose one of {', '.join(CPU_BACKENDS)}")
    has_openvino = hasattr(paddle.inference.Config, "enable_openvino_engine")
    if wanted == "openvino" and not has_openvino:
        raise ResnetError(f"{BACKEND_ENV}=openvino but Paddle {paddle.__version__} has no "
                          "OpenVINO engine; use onednn")
    return wanted or ("openvino" if has_openvino else "onednn")


def configure(config, *, device: str, backend: str, threads: int, trt: bool, precision: str,
              max_batch: int, input_shape, cache_dir: str, input_name: str = "image"):
    """Apply the run's choices to a paddle.inference.Config (any object with its methods).

    Kept apart from the predictor so the GPU and TensorRT choices can be tested on a CPU-only
    Paddle, which refuses those calls outright.
    """
    from paddle.inference import PrecisionType

    config.disable_glog_info()
    config.switch_ir_optim(True)
    if device == "gpu":
        half = precision == "fp16"
        mode = PrecisionType.Half if half else PrecisionType.Float32
        config.enable_use_gpu(GPU_POOL_MB, 0, mode)
        config.enable_memory_optim()
        if trt:  # int8: TensorRT reads the scales of the quantized program (no calibration)
            config.enable_tensorrt_engine(
                workspace_size=TRT_WORKSPACE, max_batch_size=max_batch, min_subgraph_size=3,
                precision_mode=PrecisionType.Int8 if precision == "int8" else mode,
                use_static=True, use_calib_mode=False)
            shape = list(input_shape)
            config.set_trt_dynamic_shape_info({input_name: [1, *shape]},
                                              {input_name: [max_batch, *shape]},
                                              {input_name: [max_batch, *shape]})
            config.set_optim_cache_dir(cache_dir)  # serialized TensorRT engines live here
        return config
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)
    if backend == "openvino":
        # the precision hint is always explicit: left unset, OpenVINO runs bf16 on CPUs with
        # AVX512-BF16 or AMX, i.e. not the fp32 we promise. int8 has no hint of its own
        # (OpenVINO refuses one): the quantized program's quantize/dequantize pairs make it
        # run u8 kernels, and the hint is what every other op runs in (int8_mode)
        half = precision == "bf16" or (precision == "int8" and int8_mode(backend) != "int8")
        config.enable_openvino_engine(PrecisionType.Bfloat16 if half else PrecisionType.Float32)
        config.set_optim_cache_dir(cache_dir)  # OpenVINO's compiled blob: fast second start
    else:
        config.enable_mkldnn()
        config.enable_memory_optim()
        if precision == "bf16":
            config.enable_mkldnn_bfloat16()
        elif precision == "int8":  # without it oneDNN runs the quantized program in fp32, 8x
            config.enable_mkldnn_int8()  # slower
    return config


class Dygraph:
    """The dygraph reference as an engine: `run(batch, layers)` with the run's pooling."""

    def __init__(self, spec: Spec, values: dict, pool: str = "none"):
        from resnet.runtime.network import Network

        self.network, self.pool = Network(spec).load_params(values), pool

    def describe(self) -> str:
        return "Paddle dygraph (reference)"

    def run(self, batch: np.ndarray, outputs=None) -> dict[str, np.ndarray]:
        return self.network.run(batch, outputs, self.pool)


def describe_cpu(backend: str, precision: str, threads: str) -> str:
    """How a CPU engine runs, for the log: backend, `threads` (how the cores are used) and
    precision."""
    if precision == "int8" and int8_mode(backend) != "int8":
        precision = "int8, the other ops bf16"
    return (f"Paddle Inference with {'OpenVINO' if backend == 'openvino' else 'oneDNN'}"
            f" on CPU ({threads}, {precision})")


_claims: dict = {}  # threads -> (pid, cpu.CoreClaim or None): this process's claims


def _claimed(threads: int):
    """The cores this process's OpenVINO engines of `threads` threads are created on, claimed
    on first use and kept for the process: its engines run one at a time (int8 levels, auto's
    candidates), so they share the cores, and a candidate alive beside the chosen one never
    takes cores another process (a Ray actor starting beside it) would get."""
    pid, claim = _claims.get(threads, (None, None))
    if pid != os.getpid():  # first use, or a claim inherited through fork: the parent's
        claim = cpu.claim_cores(threads)
        _claims[threads] = (os.getpid(), claim)
    return claim


class InferenceEngine:
    """A Paddle Inference predictor for fixed output layers; `run` matches Network.run."""

    def __init__(self, prefix: str, layers: list[str], device: str = "cpu", threads: int = 0,
                 trt: bool = False, precision: str = "fp32", max_batch: int = 16,
                 backend: str | None = None, input_shape=(3, 224, 224), onednn_prefix=None):
        """`onednn_prefix`: where OpenVINO cannot load the model and oneDNN takes over, a
        callable giving the compiled model oneDNN runs instead (int8: the model without the
        unsigned activations only OpenVINO reads); by default the same model."""
        self.layers, self.prefix = list(layers), prefix
        self.device, self.precision = device, precision
        self.backend = "gpu" if device == "gpu" else (backend or cpu_backend())
        if self.backend == "onednn":
            os.environ.setdefault("ONEDNN_DEFAULT_FPMATH_MODE", "STRICT")  # never implicit bf16
        self.options = dict(device=device, threads=threads or cpu.usable_cores(), trt=trt,
                            precision=precision, max_batch=max(1, max_batch),
                            input_shape=input_shape, cache_dir=os.path.dirname(prefix))
        self.claim = None  # cpu.CoreClaim: the cores an OpenVINO engine of fewer threads runs on
        try:
            self.predictor = self._predictor(prefix)
        except Exception as e:
            if self.backend != "openvino":
                raise ResnetError(f"Paddle Inference could not load the compiled model "
                                  f"{prefix} ({type(e).__name__}: {_first_line(e)})") from None
            log.warning("OpenVINO could not run this model (%s); using oneDNN instead",
                        _first_line(e))
            self.backend = "onednn"
            if onednn_prefix is not None:
                self.prefix = onednn_prefix()
                self.options["cache_dir"] = os.path.dirname(self.prefix)
            self.predictor = self._predictor(self.prefix)
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.outputs = [self.predictor.get_output_handle(n)
                        for n in self.predictor.get_output_names()]
        self._last = None  # samples of the previous batch and its outputs (stale-output check)

    def _predictor(self, prefix: str):
        from paddle import inference

        config = inference.Config(prefix + ".pdmodel", prefix + ".pdiparams")
        configure(config, backend=self.backend, **self.options)
        threads = self.options["threads"]
        if self.backend != "openvino" or threads >= cpu.usable_cores():
            return inference.create_predictor(config)
        # OpenVINO pins an engine of T threads to the first T cores of the thread that creates
        # it, whatever else runs there: engines in several processes (Ray actors on one node,
        # shards side by side) would all share the first cores and leave the others idle. A
        # process's engines are created on cores of its own instead (claimed machine-wide).
        self.claim = _claimed(threads)
        if self.claim is None:  # cannot claim here (another OS): OpenVINO places it
            return inference.create_predictor(config)
        with cpu.thread_on(self.claim.cores):
            return inference.create_predictor(config)

    def describe(self) -> str:
        if self.device == "gpu":
            return (f"Paddle Inference on GPU ({'TensorRT' if self.options['trt'] else 'cuDNN'}, "
                    f"{self.precision})")
        threads = self.options["threads"]
        how = f"{threads} thread{'s' if threads > 1 else ''}"
        if self.claim and self.backend == "openvino":
            how += f" on core{'s' if len(self.claim.cores) > 1 else ''} " + \
                ",".join(map(str, self.claim.cores))
        return describe_cpu(self.backend, self.precision, how)

    def run(self, batch: np.ndarray, outputs=None) -> dict[str, np.ndarray]:
        if outputs is not None and list(outputs) != self.layers:
            raise ValueError(f"engine compiled for {self.layers}, asked for {list(outputs)}")
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self.input.reshape(batch.shape)
        self.input.copy_from_cpu(batch)
        self.predictor.run()
        out = {name: h.copy_to_cpu() for name, h in zip(self.layers, self.outputs)}
        self._guard(batch, out)
        return out

    def _guard(self, batch: np.ndarray, out: dict) -> None:
        """Stop on outputs a failed run left behind. Paddle Inference's OpenVINO step logs an
        inference exception and returns, leaving the output tensors as they were (read-only
        to us, so no sentinel can be planted): the previous batch's values, or none. Caught
        here: rows missing, non-finite values, and every output identical to the previous
        batch's although the input changed (compared on a fixed sample of ~0.1% of the
        values). About 1 ms per batch of 16 at res5_3_branch2c_bn (bench/engine_guard.py)."""
        n = batch.shape[0]
        for name, value in out.items():
            if value.shape[:1] != (n,):
                raise ResnetError(f"engine failure: {self.describe()} returned "
                                  f"{value.shape[0] if value.ndim else 0} rows of {name} for "
                                  f"{n} images (its log above says why); {_RETRY}")
            if not np.isfinite(value).all():
                raise ResnetError(f"engine failure: {self.describe()} returned NaN or infinite "
                                  f"values at {name}; {_RETRY}")
        probe = (_sample(batch), [_sample(v) for v in out.values()])
        last, self._last = self._last, probe
        if (last is not None and not np.array_equal(last[0], probe[0])
                and all(np.array_equal(a, b) for a, b in zip(last[1], probe[1]))):
            raise ResnetError(f"engine failure: {self.describe()} returned the previous "
                              f"batch's outputs again for a different batch (a failed run; its "
                              f"log above says why); {_RETRY}")


_RETRY = f"nothing of this batch was written; rerun with {BACKEND_ENV}=onednn or --engine=dygraph"


def _sample(a: np.ndarray) -> np.ndarray:
    """Every 1009th value (a prime stride, so rows and channels are all visited), copied."""
    return a.reshape(-1)[::1009].copy()


def _first_line(e: Exception) -> str:
    return first_line(str(e), 300) or type(e).__name__


def check_options(engine: str, device: str, trt: bool, precision: str) -> None:
    """Refuse combinations that cannot work, before anything is compiled."""
    if engine not in ENGINES:
        raise ResnetError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    if precision not in PRECISIONS:
        raise ResnetError(f"unknown precision {precision!r}: choose one of "
                          f"{', '.join(PRECISIONS)}")
    if trt and device != "gpu":
        cuda = paddle.device.is_compiled_with_cuda()
        raise ResnetError("--trt needs the GPU: " + ("pass --use_gpu=1" if cuda else
                          f"this Paddle ({paddle.__version__}) has no CUDA support; {GPU_HELP}"))
    if trt and engine != "inference":
        raise ResnetError("--trt works with --engine=inference only")
    if trt and paddle.inference.get_trt_compile_version()[0] == 0:
        raise ResnetError(f"--trt: this Paddle ({paddle.__version__}) was built without "
                          "TensorRT; install a paddlepaddle-gpu build with TensorRT, or drop --trt")
    if precision == "fp16" and device != "gpu":
        raise ResnetError("--precision=fp16 needs the GPU; on CPU use fp32 or bf16")
    if precision == "bf16" and device != "cpu":
        raise ResnetError("--precision=bf16 is for the CPU (oneDNN/OpenVINO); on GPU use fp16")
    if precision == "auto" and device != "cpu":
        raise ResnetError("--precision=auto measures the CPU's precisions; on GPU choose fp16 "
                          "or fp32")
    if precision == "int8" and device == "gpu" and not trt:
        raise ResnetError("--precision=int8 on the GPU runs through TensorRT: add --trt")
    if precision != "fp32" and engine != "inference":
        raise ResnetError(f"--precision={precision} needs --engine=inference")
    if precision == "bf16" and cpu.bf16_support() is None:
        # without native bf16 the backends silently run fp32: never claim what does not run
        known = cpu.cpu_flags() is not None
        raise ResnetError(f"--precision=bf16: {cpu.cpu_name()} "
                          + ("lacks bf16 support (no " + " or ".join(cpu.BF16_FLAGS)
                             + " CPU flag)" if known else "cannot be checked for bf16 support")
                          + "; use --precision=fp32")


def rel_err(got: np.ndarray, want: np.ndarray) -> float:
    """max|got - want| / max|want|: the engine contract's measure (1e-4 in fp32)."""
    scale = float(np.abs(want).max()) or 1.0
    return float(np.abs(np.asarray(got, np.float64) - want).max()) / scale


def verify(net, spec: Spec, values: dict, layers: list[str], precision: str = "fp32",
           images: int = 2, pool: str = "none") -> dict[str, float]:
    """The engine's relative error per layer against the dygraph reference on a fixed batch.

    Raises ResnetError above TOLERANCE[precision]; otherwise returns the errors.
    """
    from resnet.runtime.network import Network

    x = np.random.default_rng(0).uniform(-128, 128, (images, *spec["input"].shape))
    x = x.astype(np.float32)
    want = Network(spec).load_params(values).run(x, layers, pool)
    got = net.run(x, layers)
    errors = {k: rel_err(got[k], want[k]) for k in layers}
    worst = max(errors, key=lambda k: (np.isnan(errors[k]), errors[k]))
    if not errors[worst] <= TOLERANCE[precision]:  # NaN fails too
        raise ResnetError(f"engine check: {net.describe()} differs from the dygraph reference "
                          f"by {errors[worst]:.2e} (relative) at {worst}, over the {precision} "
                          f"bound {TOLERANCE[precision]:g}; run with {BACKEND_ENV}=onednn or "
                          "--engine=dygraph, and please report it")
    log.info("check: engine matches the dygraph reference (max relative error %.1e at %s, "
             "%s bound %g)", errors[worst], worst, precision, TOLERANCE[precision])
    return errors


#: --precision=int8 is refused when the globally pooled features of any calibration image
#: point elsewhere than fp32's by more than this (cosine similarity)
INT8_MIN_COSINE = 0.99


def reference_outputs(spec: Spec, values: dict, layers: list[str], images: np.ndarray,
                      pool: str = "none", batch: int = 16) -> dict[str, np.ndarray]:
    """The fp32 dygraph network's `layers` on `images`: what measure_precision compares
    with, computed once however many models are measured against it."""
    from resnet.runtime.network import Network

    log.info("fp32 reference: %d calibration images through the dygraph network, to measure "
             "against", len(images))
    reference = Network(spec).load_params(values)
    parts = [reference.run(images[i:i + batch], layers, pool)
             for i in range(0, len(images), batch)]
    return {k: np.concatenate([p[k] for p in parts]) for k in layers}


def lazy_reference(spec: Spec, values: dict | None, layers: list[str], images: np.ndarray,
                   pool: str, model_dir: str):
    """reference_outputs on `images` as a function computed on its first call only (the
    model's values read from `model_dir` then, if not given): several models measured
    against one reference, and none computed when every measurement is cached."""
    @functools.cache
    def reference() -> dict[str, np.ndarray]:
        return reference_outputs(spec, params_io.load_model(model_dir, spec)
                                 if values is None else values, layers, images, pool)
    return reference


def describe_speeds(chosen: dict) -> str:
    """--precision=auto's measured speeds (its record), fastest first, for the log."""
    rates = sorted(chosen["img_per_s"].items(), key=lambda kv: -kv[1])
    return f"images/s at batch {chosen['batch']}: " + ", ".join(f"{k} {v:g}" for k, v in rates)


def measure_precision(net, want: dict[str, np.ndarray], layers: list[str], images: np.ndarray,
                      batch: int = 16, what: str = "int8") -> dict:
    """An int8 or bf16 engine against the fp32 reference outputs `want` (reference_outputs)
    on the calibration images: max relative error per layer, cosine of the globally pooled
    features of the first layer (min / median over images) and, with `output`, top-1
    agreement; "accepted" says whether the minimum cosine reaches INT8_MIN_COSINE."""
    parts = [net.run(images[i:i + batch], layers) for i in range(0, len(images), batch)]
    got = {k: np.concatenate([p[k] for p in parts]) for k in layers}
    probe = layers[0]
    cosine = pooled_cosine(got[probe], want[probe])
    stats = {"images": len(images), "layer": probe,
             "cosine_min": float(cosine.min()), "cosine_median": float(np.median(cosine)),
             "max_rel_err": {k: rel_err(got[k], want[k]) for k in layers}}
    if "output" in layers:
        stats["top1_agreement"] = float(np.mean(got["output"].argmax(1)
                                                == want["output"].argmax(1)))
    stats["accepted"] = bool(stats["cosine_min"] >= INT8_MIN_COSINE)  # NaN: refused
    log.info("%s vs fp32 on %d calibration images: %s", what, len(images),
             describe_measurement(stats))
    return stats


def refusal(stats: dict, precision: str = "int8") -> ResnetError:
    """--precision=int8 or bf16 refused, with the measurement (measure_precision) that
    refused it."""
    kept = (f" (even with {stats['fp32_ops']} convolutions and fcs left out of int8)"
            if stats.get("fp32_ops") else "")
    how = "calibrate" if precision == "int8" else "measure"
    return ResnetError(f"--precision={precision} refused: the pooled {stats['layer']} features "
                       f"of a calibration image have cosine {stats['cosine_min']:.4f} with "
                       f"fp32's, under the bound {INT8_MIN_COSINE}{kept}; {how} on images like "
                       "your data (--calibration=LIST) or use --precision=fp32")


def quantizable_nodes(spec: Spec, layers: list[str]) -> list:
    """The nodes Paddle's PTQ quantizes, in the compiled program's order: the convolutions
    (not the depthwise ones, which Paddle runs as another op) and the fcs that `layers`
    need."""
    out = []
    for node in spec.needed(layers):
        a = node.attrs
        depthwise = (node.op == "conv" and a.get("groups", 1) == a["channels"] > 1
                     and a["filters"] % a["channels"] == 0)
        if node.op == "fc" or (node.op == "conv" and not depthwise):
            out.append(node)
    return out


#: the precisions measured against fp32 on calibration images, which they need
MEASURED = ("int8", "bf16", "auto")

#: how many int8 models are tried before --precision=int8 is refused (int8_levels)
INT8_LEVELS = 4


def sensitive_ops(spec: Spec, layers: list[str]) -> tuple[int, ...]:
    """Positions (in quantizable_nodes) of the ops whose rounding costs the most accuracy for
    the least work: the stem (the first op, reading the image), the projections on residual
    shortcuts (their rounding lands on the trunk itself, which every later block reads) and
    the last op (the producer of the requested layers: the classifier fc, or the last conv,
    whose output is compared as it is)."""
    nodes = quantizable_nodes(spec, layers)
    where = {n.name: i for i, n in enumerate(nodes)}
    out = {0, len(nodes) - 1} if nodes else set()
    for node in spec.needed(layers):
        if node.op != "addto":
            continue
        for i, name in enumerate(node.inputs):  # a projection: a conv (and its batch norm)
            src = spec[name]                     # reading what the other path starts from
            while src.op == "bn":
                src = spec[src.inputs[0]]
            others = {n.name for k, other in enumerate(node.inputs) if k != i
                      for n in spec.needed([other])}
            if src.name in where and src.inputs[0] in others:
                out.add(where[src.name])
    return tuple(sorted(out))


def int8_levels(spec: Spec, layers: list[str]) -> list[tuple[int, ...]]:
    """The int8 models tried in turn: everything quantized; then the two ends left out (in
    fp32, or bf16: int8_mode): the op reading the image and the producer of the requested
    layers, the cheapest of the sensitive ops; then every sensitive op (sensitive_ops); then
    the earliest stages too, one more stage each time.

    Rounding errors made early travel through every later layer (and along the residual
    paths of a ResNet), so the highest-resolution stages are the ones worth keeping exact
    after the sensitive ops; a stage is the run of quantizable ops with one output size, the
    stem joined to the stage after it when it has fewer than three ops.
    """
    nodes = quantizable_nodes(spec, layers)
    stages: list[list[int]] = []
    size = None
    for i, node in enumerate(nodes):
        here = tuple(node.shape[1:]) if len(node.shape) == 3 else ("fc",)
        if stages and (here == size or (len(stages[-1]) < 3 and here != ("fc",))):
            stages[-1].append(i)  # the same stage, or a short stem joining the next one
        else:
            stages.append([i])
        size = here
    levels, keep = [()], set()
    ends = {0, len(nodes) - 1} if nodes else set()
    for more in [ends, set(sensitive_ops(spec, layers))] + [set(s) for s in stages]:
        keep |= more
        if len(keep) < len(nodes) and tuple(sorted(keep)) != levels[-1]:
            levels.append(tuple(sorted(keep)))  # never every op: that is the fp32 model
    return levels[:INT8_LEVELS]


def pooled_cosine(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Per image, the cosine between two runs' features, (C, H, W) maps globally average
    pooled first: whether each image's feature vector keeps its direction."""
    a, b = (np.asarray(v, np.float64) for v in (got, want))
    if a.ndim == 4:
        a, b = a.mean(axis=(2, 3)), b.mean(axis=(2, 3))
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1),
                                       1e-30)


def describe_measurement(stats: dict) -> str:
    errs = ", ".join(f"{k} {v:.1e}" for k, v in stats["max_rel_err"].items())
    top1 = (f"; top-1 agreement {100 * stats['top1_agreement']:.1f}%"
            if "top1_agreement" in stats else "")
    kept = f"; {stats['fp32_ops']} ops left out" if stats.get("fp32_ops") else ""
    verdict = ("accepted" if stats["cosine_min"] >= INT8_MIN_COSINE else "refused") + \
        f": the bound is cosine {INT8_MIN_COSINE}"
    return (f"pooled {stats['layer']} cosine min {stats['cosine_min']:.4f} / median "
            f"{stats['cosine_median']:.4f}; max relative error {errs}{top1}{kept} ({verdict})")


def create(engine: str, spec: Spec, values: dict, layers: list[str], model_dir: str,
           model_sha256: str, device: str = "cpu", threads: int = 0, trt: bool = False,
           precision: str = "fp32", max_batch: int = 16, check: bool = False,
           pool: str = "none", calibration: np.ndarray | None = None, reference=None):
    """An object with `run(batch, layers) -> {layer: array}` for the chosen engine; with
    `pool` avg / max, (C, H, W) layers come back globally pooled to (C,).

    `max_batch`: the most images one run() gets (TensorRT's shape range). The compiled
    engine is compared with the dygraph reference on its first use with each backend and
    precision (recorded in its cache entry), and on every run with `check`. int8, bf16 and
    auto need `calibration` images (preprocessed, N x 3 x H x W): int8's model is quantized
    with their ranges, and all three are measured against fp32 on them instead of the test
    batch (measure_precision); `reference`, when given, returns the fp32 reference outputs
    on `calibration` (reference_outputs) that the caller already has, so that auto measures
    every precision against one computation.
    """
    check_options(engine, device, trt, precision)
    if not any(len(spec[name].shape) == 3 for name in layers):
        pool = "none"  # nothing to pool: the same compiled model as without --pool
    if engine == "dygraph":
        return Dygraph(spec, values, pool)
    if device == "gpu" and precision == "fp32":
        os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")  # cuDNN/cuBLAS/TensorRT: no TF32
    if precision in MEASURED and (calibration is None or not len(calibration)):
        raise ResnetError(f"--precision={precision} needs calibration images")
    if precision == "auto":
        return _auto(spec, values, layers, model_dir, model_sha256, threads, max_batch, check,
                     pool, calibration)
    if precision == "int8":
        return _int8(spec, values, layers, model_dir, model_sha256, device, threads, trt,
                     max_batch, check, pool, calibration, reference)
    if precision == "bf16":
        return _bf16(spec, values, layers, model_dir, model_sha256, threads, max_batch, check,
                     pool, calibration, reference)
    prefix = compiled_model(model_dir, spec, layers, model_sha256, pool)
    net = InferenceEngine(prefix, layers, device, threads, trt, precision, max_batch,
                          input_shape=spec["input"].shape)
    log.info("engine: %s", net.describe())
    folder, key = os.path.dirname(prefix), check_key(net.backend, trt, precision)
    done = cache.checks(folder).get(key)
    if check or done is None:  # first use of this compiled model this way, or --check
        if values is None:
            values = params_io.load_model(model_dir, spec)
        errors = verify(net, spec, values, layers, precision, pool=pool)
        cache.record_check(folder, key, max(errors.values()))
    else:
        log.info("engine checked against the dygraph reference on first use (max relative "
                 "error %.1e; --check repeats it)", done)
    return net


def _int8(spec, values, layers, model_dir, model_sha256, device, threads, trt, max_batch,
          check, pool, calibration, reference=None):
    """The first int8 model of int8_levels whose measurement on the calibration images
    passes the bound; each level's measurement is kept in its cache entry, so a later run
    goes straight to the accepted one."""
    stats = None
    backend = "gpu" if device == "gpu" else cpu_backend()
    if reference is None:  # one reference for every level measured
        reference = lazy_reference(spec, values, layers, calibration, pool, model_dir)
    for keep in int8_levels(spec, layers):
        if stats is not None:
            log.info("int8 refused with %s (cosine %.4f); trying again with %d "
                     "convolutions and fcs left out of int8",
                     f"{stats['fp32_ops']} ops left out" if stats["fp32_ops"]
                     else "every op quantized", stats["cosine_min"], len(keep))
        prefix = compiled_model(model_dir, spec, layers, model_sha256, pool, calibration,
                                keep, unsigned_int8(backend), narrow_int8(backend))
        folder = os.path.dirname(prefix)
        stats = cache.checks(folder).get(int8_key(backend, trt))
        if not check and _refused_before(stats, "int8"):
            continue  # refused before: no need to load it
        signed = None  # where OpenVINO hands over to oneDNN, which needs the model without
        if unsigned_int8(backend):  # u8 activations: that one, built then
            signed = functools.partial(compiled_model, model_dir, spec, layers, model_sha256,
                                       pool, calibration, keep)
        net = InferenceEngine(prefix, layers, device, threads, trt, "int8", max_batch,
                              input_shape=spec["input"].shape, onednn_prefix=signed)
        folder = os.path.dirname(net.prefix)
        stats = _measured(net, folder, int8_key(net.backend, trt), check, reference, layers,
                          calibration, "int8", announce=False, fp32_ops=len(keep))
        if _passes(stats):
            net = _streamed(net, folder, int8_key(net.backend, trt), stats, check, threads,
                            max_batch, calibration, layers, spec["input"].shape)
            log.info("engine: %s", net.describe())
            return net
    raise refusal(stats)


def stream_count(device: str, threads: int) -> int:
    """How many engine processes int8 is measured with (streams.py), or 1 for none: only
    where the engine takes every core (the local runner's default; a Ray actor's threads
    are set for it), one per core up to MAX_STREAMS."""
    cores = cpu.usable_cores()
    return min(cores, MAX_STREAMS) if device == "cpu" and threads == 0 and cores > 1 else 1


def _streamed(net, folder, key, stats, check, threads, max_batch, calibration, layers,
              input_shape):
    """The accepted int8 engine as it runs fastest: one process with every core, or
    streams.Streams, timed against each other on the calibration images on first use (or
    with --check) and the choice kept beside the measurement. Same model, same values: only
    the work's split between cores differs."""
    count = stream_count(net.device, threads)
    # timed before with this many processes (the cache may be shared by other machines); a
    # record without a valid choice is timed again
    timed = (not check and str(count) in (stats.get("streams_img_per_s") or {})
             and stats.get("streams") in (1, count))
    if count == 1 or timed and stats["streams"] == 1:
        return net
    from resnet.runtime.streams import Streams

    shapes = {name: value.shape[1:] for name, value in net.run(calibration[:1], layers).items()}
    try:
        many = Streams(f"{__name__}:InferenceEngine", net.prefix, layers, count, "int8",
                       max_batch, net.backend, input_shape, shapes)
    except (ResnetError, OSError) as e:  # one process still runs: say why not the other
        log.warning("int8 engine processes could not start (%s); running one process", e)
        net.measured = stats
        return net
    low, high = min(many.threads), max(many.threads)
    many.description = describe_cpu(
        net.backend, "int8", f"{count} processes x {low if low == high else f'{low}-{high}'} "
        f"thread{'s' if high > 1 else ''}")
    if not timed:
        batch = min(len(calibration), max_batch)
        rates = {1: speed(net, calibration, layers, batch),
                 count: speed(many, calibration, layers, batch)}
        shown = {str(k): round(v, 1) for k, v in rates.items()}
        # a tie keeps one process
        stats = dict(stats, streams=int(max(shown, key=shown.get)), streams_img_per_s=shown)
        cache.record_check(folder, key, stats)
        log.info("int8 speed on the calibration images: one process %s img/s, %d processes "
                 "%s img/s", shown["1"], count, shown[str(count)])
    if stats["streams"] == 1:
        many.close()
        net.measured = stats
        return net
    many.measured = stats
    return many


def _passes(stats: dict) -> bool:
    """Whether a measurement (measure_precision) reaches the bound of this run."""
    return stats["cosine_min"] >= INT8_MIN_COSINE  # NaN: refused


def _refused_before(stats: dict | None, what: str) -> bool:
    """Whether a recorded measurement, read before loading its engine, is under the bound
    (then logged, and the engine is not loaded)."""
    if stats is None or _passes(stats):
        return False
    log.info("%s measured against fp32 on first use: %s", what, describe_measurement(stats))
    return True


def _measured(net, folder: str, key: str, check: bool, reference, layers: list[str],
              calibration: np.ndarray, what: str, announce: bool = True, **extra) -> dict:
    """The measurement of the int8 or bf16 engine `net` kept under `key` in its cache entry
    `folder`: made against `reference()` on first use or with `check`, else read; kept on
    `net` as `measured` (what --precision=auto reads)."""
    stats = cache.checks(folder).get(key)  # the engine's own backend: OpenVINO may hand over
    if check or stats is None:
        stats = dict(measure_precision(net, reference(), layers, calibration, what=what),
                     **extra)
        cache.record_check(folder, key, stats)
    else:
        log.info("%s measured against fp32 on first use: %s; --check repeats it", what,
                 describe_measurement(stats))
    if announce and _passes(stats):
        log.info("engine: %s", net.describe())
    net.measured = stats
    return stats


def _bf16(spec, values, layers, model_dir, model_sha256, threads, max_batch, check, pool,
          calibration, reference=None):
    """--precision=bf16: the fp32 compiled model run in bf16, measured against fp32 on the
    calibration images on first use (the int8 bound) and refused under it; the
    measurement is kept in the model's entry (bf16_key), so a later run only reads it."""
    prefix = compiled_model(model_dir, spec, layers, model_sha256, pool)
    folder, images = os.path.dirname(prefix), calibration_checksum(calibration)
    stats = cache.checks(folder).get(bf16_key(cpu_backend(), images))
    if not check and _refused_before(stats, "bf16"):
        raise refusal(stats, "bf16")  # refused before: no need to load it
    net = InferenceEngine(prefix, layers, "cpu", threads, False, "bf16", max_batch,
                          input_shape=spec["input"].shape)
    if reference is None:
        reference = lazy_reference(spec, values, layers, calibration, pool, model_dir)
    stats = _measured(net, folder, bf16_key(net.backend, images), check, reference, layers,
                      calibration, "bf16")
    if not _passes(stats):
        raise refusal(stats, "bf16")
    return net


def candidates() -> list[str]:
    """The precisions this CPU runs natively, fastest first: what --precision=auto tries."""
    return ((["int8"] if cpu.int8_support() else []) + (["bf16"] if cpu.bf16_support() else [])
            + ["fp32"])


def speed(net, images: np.ndarray, layers: list[str], batch: int, runs: int = 3) -> float:
    """Images per second of `net` on a batch of the calibration images: the best of `runs`
    timed runs after one warm-up."""
    import time

    x = images[:batch]
    net.run(x, layers)
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        net.run(x, layers)
        best = min(best, time.perf_counter() - start)
    return len(x) / best


def _auto(spec, values, layers, model_dir, model_sha256, threads, max_batch, check, pool,
          calibration):
    """--precision=auto: the fastest of the CPU's native precisions (candidates) whose
    features pass the int8 bound against fp32 on the calibration images (fp32 always does),
    timed in this process. The choice is kept in the fp32 entry, keyed by this CPU and the
    calibration images, so a later run builds the chosen engine at once."""
    fp32 = create("inference", spec, values, layers, model_dir, model_sha256, "cpu", threads,
                  max_batch=max_batch, check=check, pool=pool)
    folder = os.path.dirname(fp32.prefix)
    # the choice for these calibration images on this CPU
    where = hashlib.sha256(f"{calibration_checksum(calibration)}|{cpu.identity()}".encode())
    key = check_key(fp32.backend, False, f"auto-{where.hexdigest()[:12]}")
    chosen = cache.checks(folder).get(key)
    how = "measured on first use; --check measures again"
    if chosen is None or check:
        how = "measured now"
        if values is None:
            values = params_io.load_model(model_dir, spec)
        batch = min(len(calibration), max_batch)
        rates = {"fp32": speed(fp32, calibration, layers, batch)}
        nets, cosines = {"fp32": fp32}, {}
        reference = lazy_reference(spec, values, layers, calibration, pool, model_dir)

        for precision in candidates()[:-1]:
            try:
                net = create("inference", spec, values, layers, model_dir, model_sha256, "cpu",
                             threads, precision=precision, max_batch=max_batch, check=check,
                             pool=pool, calibration=calibration, reference=reference)
            except ResnetError as e:  # under the bound: not a candidate
                log.info("--precision=auto: %s left out (%s)", precision, e)
                continue
            cosines[precision] = round(net.measured["cosine_min"], 4)
            rates[precision], nets[precision] = speed(net, calibration, layers, batch), net
        best = max(rates, key=rates.get)
        chosen = {"precision": best, "img_per_s": {k: round(v, 2) for k, v in rates.items()},
                  "batch": batch, "cosine_min": cosines, "layer": layers[0]}
        cache.record_check(folder, key, chosen)
        net = nets[best]
    else:
        best = chosen["precision"]
        net = fp32 if best == "fp32" else create(
            "inference", spec, values, layers, model_dir, model_sha256, "cpu", threads,
            precision=best, max_batch=max_batch, pool=pool, calibration=calibration)
    log.info("--precision=auto chose %s (%s; %s)", best, how, describe_speeds(chosen))
    net.auto = chosen
    return net


def build(model, layers: list[str], device: str, settings, *, max_batch: int = 16,
          calibration=None):
    """The engine of a loaded model directory (a modelio LoadedModel) with the run's
    `settings` (config.EngineSettings: engine, threads, TensorRT, precision, --check, pool),
    as every runner builds it: the local runner once, each Ray actor its own. `calibration`
    gives the calibration tensor when called; it is called for the measured precisions
    (MEASURED: int8, bf16, auto) only."""
    return create(settings.engine, model.spec, model.values, layers, model.directory,
                  model.sha256, device, settings.threads, settings.trt, settings.precision,
                  max_batch=max_batch, check=settings.check, pool=settings.pool,
                  calibration=calibration() if settings.precision in MEASURED
                  and calibration else None)
