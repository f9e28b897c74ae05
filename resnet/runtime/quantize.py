"""int8 post-training quantization of a compiled fp32 model (`--precision=int8`).

Paddle's own PTQ (paddle.static.quantization, 'hist' calibration, per-channel weight scales)
rewrites the legacy inference program with quantize/dequantize pairs around every conv and
the fc; both CPU backends then run it in int8: OpenVINO turns the pairs into u8 kernels
(with the fp32 precision hint: it refuses an int8 hint), oneDNN through its int8 passes
(`enable_mkldnn_int8`). Chosen by measurement over OpenVINO's NNCF (a 60 MB extra dependency
for a few % more speed) and 'KL' calibration (5x slower to calibrate, no more accurate):
docs/engine_notes.md.

PTQ in Paddle 3.3.1 stores most activation scales as 0-D tensors where the program declares
shape [1]; OpenVINO's Paddle frontend then fails to load the model, so every parameter is
reshaped to its declared shape before saving. Like the fp32 export, this runs in a child
process started with FLAGS_enable_pir_api=0 (PTQ works on legacy programs only):
`python -m resnet.runtime.quantize FP32_DIR CALIBRATION.npy OUT_DIR`.
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

from resnet.runtime.static import run_legacy

ALGO = "hist"
BATCH = 8  # calibration images per PTQ batch
MODEL, PARAMS = "model.pdmodel", "model.pdiparams"


def quantize(fp32_prefix: str, calibration: np.ndarray, prefix: str) -> None:
    """Write PREFIX.pdmodel / .pdiparams: the fp32 model at `fp32_prefix` quantized to int8
    with activation ranges calibrated on `calibration` (N, 3, H, W float32, preprocessed)."""
    out_dir = os.path.dirname(prefix)
    with tempfile.TemporaryDirectory(prefix=".calibration-", dir=out_dir) as tmp:
        data = os.path.join(tmp, "calibration.npy")
        np.save(data, np.ascontiguousarray(calibration, np.float32))
        run_legacy("resnet.runtime.quantize", [os.path.dirname(fp32_prefix), data, out_dir],
                   prefix + ".pdiparams", "int8 quantization")


def _main(src_dir: str, data: str, out_dir: str) -> None:
    import paddle
    from paddle.static.quantization import PostTrainingQuantization

    paddle.enable_static()
    images = np.load(data)
    batches = [images[i:i + BATCH] for i in range(0, len(images), BATCH)]
    exe = paddle.static.Executor(paddle.CPUPlace())
    with tempfile.TemporaryDirectory(prefix=".ptq-", dir=out_dir) as raw:
        ptq = PostTrainingQuantization(
            executor=exe, model_dir=src_dir, model_filename=MODEL, params_filename=PARAMS,
            data_loader=lambda: ({"image": b} for b in batches), batch_nums=len(batches),
            algo=ALGO, quantizable_op_type=["conv2d", "matmul_v2"], onnx_format=True,
            weight_quantize_type="channel_wise_abs_max")
        ptq.quantize()
        ptq.save_quantized_model(raw, model_filename=MODEL, params_filename=PARAMS)
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            program, feeds, fetches = paddle.static.load_inference_model(
                os.path.join(raw, "model"), exe)
            for var in program.global_block().vars.values():
                found = scope.find_var(var.name)
                if not var.persistable or found is None or var.name in ("feed", "fetch"):
                    continue
                tensor = found.get_tensor()
                value = np.array(tensor)
                if value.shape != tuple(var.shape) and value.size == int(np.prod(var.shape)):
                    tensor.set(value.reshape(var.shape), paddle.CPUPlace())
            block = program.global_block()
            paddle.static.save_inference_model(os.path.join(out_dir, "model"),
                                               [block.var(f) for f in feeds], fetches, exe,
                                               program=program)


if __name__ == "__main__":
    _main(*sys.argv[1:4])
