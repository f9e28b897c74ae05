"""int8 post-training quantization of a compiled fp32 model (`--precision=int8`, `auto`).

Paddle's own PTQ (paddle.static.quantization, 'hist' calibration, per-channel weight scales,
batch norms folded into the convolutions first) rewrites the legacy inference program with
quantize/dequantize pairs on the inputs and weights of the convs and fcs; both CPU backends
then run those in int8: OpenVINO turns the pairs into u8 kernels (with the fp32 precision
hint: it refuses an int8 one), oneDNN through its int8 passes (`enable_mkldnn_int8`). Nothing
else is rounded (_NoOutputRounding says why), and the ops at given positions can be left in
fp32 (engine.int8_levels). For OpenVINO the activations that cannot be negative (after a ReLU)
are given an unsigned range (_unsigned_activations says why), and on CPUs without VNNI the
ops whose input can be negative get 7-bit weights (_narrow_weights). Chosen by measurement over
OpenVINO's NNCF (an extra runtime outside Paddle Inference, whose faster models also round the
residual adds and miss the bound) and 'KL' calibration (5x slower to calibrate, no more
accurate): docs/engine_notes.md.

PTQ in Paddle 3.3.1 stores most activation scales as 0-D tensors where the program declares
shape [1]; OpenVINO's Paddle frontend then fails to load the model, so every parameter is
reshaped to its declared shape before saving. Like the fp32 export, this runs in a child
process started with FLAGS_enable_pir_api=0 (PTQ works on legacy programs only):
`python -m resnet.runtime.quantize FP32_DIR CALIBRATION.npy OUT_DIR [OPS:KEEP,...] [u8|s8]
[w7-signed]`.
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

from resnet.runtime.static import run_legacy

ALGO = "hist"
VERSION = 2  # of the quantized program: 2 = no rounding of outputs, BN folded first
BATCH = 8  # calibration images per PTQ batch
MODEL, PARAMS = "model.pdmodel", "model.pdiparams"
OP_TYPES = ("conv2d", "matmul_v2")  # the program's ops PTQ quantizes


def quantize(fp32_prefix: str, calibration: np.ndarray, prefix: str,
             keep: tuple[int, ...] = (), ops: int | None = None,
             unsigned: bool = False, narrow: bool = False) -> None:
    """Write PREFIX.pdmodel / .pdiparams: the fp32 model at `fp32_prefix` quantized to int8
    with activation ranges calibrated on `calibration` (N, 3, H, W float32, preprocessed),
    leaving the quantizable ops at positions `keep` (0-based, in program order: see
    engine.quantizable_nodes) in fp32; `ops`: how many quantizable ops the program must have
    (checked, so that positions never name the wrong op). `unsigned`: the activations that
    cannot be negative get an unsigned 8-bit range (for OpenVINO only: _unsigned_activations).
    `narrow`: the ops whose input can be negative (the stem, reading the image) get 7-bit
    weights, for CPUs without VNNI (_narrow_weights says why)."""
    out_dir = os.path.dirname(prefix)
    with tempfile.TemporaryDirectory(prefix=".calibration-", dir=out_dir) as tmp:
        data = os.path.join(tmp, "calibration.npy")
        np.save(data, np.ascontiguousarray(calibration, np.float32))
        run_legacy("resnet.runtime.quantize", [os.path.dirname(fp32_prefix), data, out_dir,
                                                f"{ops or ''}:{','.join(map(str, keep))}",
                                                "u8" if unsigned else "s8",
                                                "w7-signed" if narrow else ""],
                   prefix + ".pdiparams", "int8 quantization")


class _NoOutputRounding:
    """Stands in for Paddle PTQ's AddQuantDequantForInferencePass, which puts a
    quantize/dequantize pair on the output of every conv, fc, batch norm, ReLU, add and pool
    (to hand their ranges to deployment engines) and feeds the consumers the rounded values.
    No int8 kernel reads those pairs: each one only rounds an fp32 tensor to 8 bits with one
    scale for all its channels, and OpenVINO executes them. With them, a model whose convs and
    fcs were all left in fp32 was far from fp32 (docs/engine_notes.md); without the pass it
    is fp32 exactly, and only the inputs and weights of the quantized convs and fcs are
    rounded."""

    def __init__(self, *args, **kwargs):
        pass

    def apply(self, graph):
        return graph


#: ops whose output is never negative when their inputs are not (ReLU's output is never)
_KEEPS_SIGN = ("pool2d", "concat", "flatten_contiguous_range", "reshape2", "squeeze2",
               "unsqueeze2", "transpose2", "dropout")


def non_negative(block) -> set[str]:
    """Names of the variables of a program block that cannot hold a negative value: the
    outputs of ReLUs, and of pooling, concatenation and reshaping ops of such variables."""
    found = set()
    for op in block.ops:
        if op.type in ("relu", "relu6"):
            found.update(op.output_arg_names)
        elif op.type in _KEEPS_SIGN and op.input("X") and all(n in found
                                                               for n in op.input("X")):
            found.update(op.output_arg_names)
    return found


def _rewrite(scope, place, name: str, change) -> None:
    """Replace the values of scope variable `name` by change(values), keeping their dtype."""
    tensor = scope.find_var(name).get_tensor()
    value = np.array(tensor)
    tensor.set(change(value).astype(value.dtype), place)


def _unsigned_activations(block, scope, place) -> None:
    """Give each activation quantize/dequantize pair whose input cannot be negative the
    unsigned range [0, T] of 256 steps instead of PTQ's symmetric [-T, T], where such a
    tensor uses only the 128 upper steps: half the rounding error for every conv input after
    a ReLU. PTQ has no unsigned mode; OpenVINO's Paddle frontend turns a pair with zero point
    z and scale s into FakeQuantize [(-128 - z) s / 127, (127 - z) s / 127], so z = -128 and
    s = T * 127 / 255 give [0, T], which its CPU plugin runs as u8 (the kind of activation
    its own quantizer, NNCF, makes after a ReLU). oneDNN's int8 passes do not read zero
    points (measured: far off), so such a model is for OpenVINO only."""
    positive = non_negative(block)
    pairs = {}  # the quantized tensor -> (its scale, the zero points of both ops)
    for op in block.ops:
        if op.type == "quantize_linear" and op.attr("quant_axis") == -1 \
                and op.input("X")[0] in positive:
            pairs[op.output("Y")[0]] = (op.input("Scale")[0], [op.input("ZeroPoint")[0]])
    for op in block.ops:
        if op.type == "dequantize_linear" and op.input("X")[0] in pairs:
            scale, zeros = pairs[op.input("X")[0]]
            if op.input("Scale")[0] != scale:
                raise SystemExit(f"quantize/dequantize pair of {op.input('X')[0]} with two "
                                 "scales")
            zeros.append(op.input("ZeroPoint")[0])
    done = set()  # a tensor quantized for two consumers shares its scale between the pairs

    def rewrite(name, change):
        if name not in done:
            _rewrite(scope, place, name, change)
            done.add(name)

    for scale, zeros in pairs.values():
        rewrite(scale, lambda s: s * np.float32(127.0 / 255.0))
        for zero in zeros:
            rewrite(zero, lambda z: np.full_like(z, -128))


def _narrow_weights(weights: set[str], bits: int = 7):
    """Paddle's QuantWeightPass (which rounds the weights to the integers stored in the
    model), made to round them to `bits` < 8 bits while the model still declares 8: each
    weight's scale is widened by 127 / (2^(bits-1) - 1) before the rounding reads it, so the
    integers stay within +-(2^(bits-1) - 1) and the dequantization, which reads the same
    scale, gives back the same values. PTQ itself refuses weight bits other than the
    activations' in this format, and 8-bit is the only weight format the backends run.

    Why, and why only where the input is signed: without VNNI or AMX, int8 kernels multiply
    u8 data by s8 weights and add the products in pairs into 16 bits (AVX2's `vpmaddubsw`),
    which saturates above 32767. A signed input (the image, for the stem) runs shifted into
    u8, across the whole 0-255, where 255 x 127 x 2 = 64770 can happen with 8-bit weights and
    255 x 63 x 2 = 32130 cannot. The ops after ReLUs measured no such loss: the coarser step
    costs them more than it saves (docs/engine_notes.md has the measurements)."""
    from paddle.static.quantization import quantization_pass

    widen = np.float32(127.0 / (2 ** (bits - 1) - 1))

    class NarrowWeights(quantization_pass.QuantWeightPass):
        def apply(self, graph):
            done = set()
            for op in graph.all_op_nodes():
                name = op.input("Scale")[0] if op.name() == "quantize_linear" else None
                if name and op.input("X")[0] in weights and name not in done:
                    _rewrite(self._scope, self._place, name, lambda s: s * widen)
                    done.add(name)
            return super().apply(graph)

    return NarrowWeights


def _quantizable(exe, src_dir: str) -> list[tuple[str | None, bool]]:
    """The quantizable ops of the program, in order: each one's weight name (None where it
    has no persistable input) and whether its activation input can be negative."""
    import paddle

    with paddle.static.scope_guard(paddle.static.Scope()):
        program, _, _ = paddle.static.load_inference_model(os.path.join(src_dir, "model"), exe)
    block = program.global_block()
    positive = non_negative(block)
    found = []
    for op in block.ops:
        if op.type in OP_TYPES:
            names = [n for n in op.input_arg_names if block.var(n).persistable]
            data = [n for n in op.input_arg_names if not block.var(n).persistable]
            found.append((names[0] if names else None,
                          not all(n in positive for n in data)))
    return found


def _main(src_dir: str, data: str, out_dir: str, keep: str = ":", mode: str = "s8",
          narrow: str = "") -> None:
    import paddle
    from paddle.static.quantization import PostTrainingQuantization, post_training_quantization

    post_training_quantization.AddQuantDequantForInferencePass = _NoOutputRounding
    paddle.enable_static()
    images = np.load(data)
    batches = [images[i:i + BATCH] for i in range(0, len(images), BATCH)]
    exe = paddle.static.Executor(paddle.CPUPlace())
    ops, _, positions = keep.partition(":")
    found, kept = _quantizable(exe, src_dir), [int(i) for i in positions.split(",") if i]
    if (ops and len(found) != int(ops)) or any(i >= len(found) or found[i][0] is None
                                                for i in kept):
        raise SystemExit(f"the program has {len(found)} quantizable ops; asked to keep "
                         f"{kept} in fp32")
    skip = [found[i][0] for i in kept]
    if narrow == "w7-signed":  # only where the input is signed: _narrow_weights
        post_training_quantization.QuantWeightPass = _narrow_weights(
            {name for name, signed in found if signed and name})
    with tempfile.TemporaryDirectory(prefix=".ptq-", dir=out_dir) as raw:
        ptq = PostTrainingQuantization(
            executor=exe, model_dir=src_dir, model_filename=MODEL, params_filename=PARAMS,
            data_loader=lambda: ({"image": b} for b in batches), batch_nums=len(batches),
            algo=ALGO, quantizable_op_type=list(OP_TYPES), onnx_format=True,
            weight_quantize_type="channel_wise_abs_max", skip_tensor_list=skip or None,
            optimize_model=True)
        ptq.quantize()
        ptq.save_quantized_model(raw, model_filename=MODEL, params_filename=PARAMS)
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            program, feeds, fetches = paddle.static.load_inference_model(
                os.path.join(raw, "model"), exe)
            if mode == "u8":
                _unsigned_activations(program.global_block(), scope, paddle.CPUPlace())
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
    _main(*sys.argv[1:7])
