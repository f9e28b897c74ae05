"""Engines that run the network: Paddle Inference (fast, default) or the dygraph reference.

The inference engine compiles the spec's network for the requested output layers once and
caches it on disk, keyed by the model's parameter checksum, the network spec, the layers and
the Paddle version, so later runs start in about a second. On CPU it runs with oneDNN and the
IR passes in fp32; on GPU (paddlepaddle-gpu) with cuDNN, optionally TensorRT and fp16.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile

import numpy as np

from . import static
from .errors import ResnetError
from .paddle_env import paddle
from .spec import Spec

log = logging.getLogger("resnet")
ENGINES = ("inference", "dygraph")
PRECISIONS = ("fp32", "bf16", "fp16")
CACHE_ENV = "RESNET_CACHE_DIR"
FORMAT = 1  # bump when the compiled layout changes, to invalidate old caches


def cache_root() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "resnet", "engines")


def cache_key(model_sha256: str, spec: Spec, layers: list[str]) -> str:
    nodes = [(n.name, n.op, n.inputs, sorted(n.attrs.items()), n.shape) for n in spec]
    blob = json.dumps([FORMAT, model_sha256, repr(nodes), layers, paddle.__version__])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def compiled_model(model_dir: str, spec: Spec, layers: list[str], model_sha256: str) -> str:
    """The cached PREFIX of the compiled model, compiling it first on a miss.

    The export goes to a temporary folder renamed into place, so concurrent runs (shards)
    never see a half-written model and a crash never leaves one behind.
    """
    root = cache_root()
    folder = os.path.join(root, cache_key(model_sha256, spec, layers))
    prefix = os.path.join(folder, "model")
    if os.path.exists(prefix + ".pdiparams"):
        log.info("compiled model found in cache %s", folder)
        return prefix
    log.info("compiling ResNet-%d for %s (once; cached in %s)", spec.layer_num, ",".join(layers),
             root)
    try:
        os.makedirs(root, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".compiling-", dir=root)
    except OSError as e:
        raise ResnetError(f"{root}: cannot write the engine cache ({e.strerror or e}); set "
                          f"{CACHE_ENV} to a writable folder or use --engine=dygraph") from None
    try:
        static.export(model_dir, spec.layer_num, layers, os.path.join(tmp, "model"),
                      spec.variant)
        try:
            os.rename(tmp, folder)
        except OSError:  # another run finished the same model first: use theirs
            if not os.path.exists(prefix + ".pdiparams"):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return prefix


class InferenceEngine:
    """A Paddle Inference predictor for fixed output layers; `run` matches Network.run."""

    def __init__(self, prefix: str, layers: list[str], device: str = "cpu", threads: int = 0,
                 trt: bool = False, precision: str = "fp32"):
        from paddle import inference

        self.layers = list(layers)
        config = inference.Config(prefix + ".pdmodel", prefix + ".pdiparams")
        config.disable_glog_info()
        config.switch_ir_optim(True)
        config.enable_memory_optim()
        if device == "gpu":
            half = precision == "fp16"
            config.enable_use_gpu(512, 0, inference.PrecisionType.Half if half
                                  else inference.PrecisionType.Float32)
            if trt:
                config.enable_tensorrt_engine(
                    workspace_size=1 << 30, max_batch_size=1, min_subgraph_size=3,
                    precision_mode=inference.PrecisionType.Half if half
                    else inference.PrecisionType.Float32, use_static=True, use_calib_mode=False)
                shape = [3, 224, 224]
                config.set_trt_dynamic_shape_info({"image": [1, *shape]}, {"image": [256, *shape]},
                                                  {"image": [16, *shape]})
        else:
            config.disable_gpu()
            config.enable_mkldnn()  # oneDNN: fp32 unless bf16 is asked for explicitly
            if precision == "bf16":
                config.enable_mkldnn_bfloat16()
            config.set_cpu_math_library_num_threads(threads or os.cpu_count() or 1)
        self.predictor = inference.create_predictor(config)
        self.input = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        self.outputs = [self.predictor.get_output_handle(n)
                        for n in self.predictor.get_output_names()]

    def run(self, batch: np.ndarray, outputs=None) -> dict[str, np.ndarray]:
        if outputs is not None and list(outputs) != self.layers:
            raise ValueError(f"engine compiled for {self.layers}, asked for {list(outputs)}")
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        self.input.reshape(batch.shape)
        self.input.copy_from_cpu(batch)
        self.predictor.run()
        return {name: h.copy_to_cpu() for name, h in zip(self.layers, self.outputs)}


def check_options(engine: str, device: str, trt: bool, precision: str) -> None:
    """Refuse combinations that cannot work, before anything is compiled."""
    if trt and device != "gpu":
        raise ResnetError("--trt needs the GPU: install paddlepaddle-gpu and pass --use_gpu=1")
    if trt and engine != "inference":
        raise ResnetError("--trt works with --engine=inference only")
    if precision == "fp16" and device != "gpu":
        raise ResnetError("--precision=fp16 needs the GPU; on CPU use fp32 or bf16")
    if precision == "bf16" and device != "cpu":
        raise ResnetError("--precision=bf16 is for the CPU (oneDNN); on GPU use fp16")
    if precision != "fp32" and engine != "inference":
        raise ResnetError(f"--precision={precision} needs --engine=inference")


def create(engine: str, spec: Spec, values: dict, layers: list[str], model_dir: str,
           model_sha256: str, device: str = "cpu", threads: int = 0, trt: bool = False,
           precision: str = "fp32"):
    """An object with `run(batch, layers) -> {layer: array}` for the chosen engine."""
    check_options(engine, device, trt, precision)
    if engine == "dygraph":
        from .network import Network

        return Network(spec).load_params(values)
    prefix = compiled_model(model_dir, spec, layers, model_sha256)
    return InferenceEngine(prefix, layers, device, threads, trt, precision)
