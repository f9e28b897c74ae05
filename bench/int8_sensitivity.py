"""Which ops cost int8 its accuracy: 8-bit rounding simulated in the fp32 dygraph network (no
int8 kernel, no PTQ run: seconds per row), for int8_levels' models and for groups of ops kept
in fp32, next to fp32's own noise floor (its features under small input noise).

The simulation rounds what Paddle's PTQ rounds: the input of each quantized conv and fc to
8 bits with one scale per tensor (its 99.999th percentile of |x| on the calibration images,
like the `hist` calibration) and the weights to 8 bits with one scale per output channel.
It tracks the engine's measurement closely enough to compare choices (the measured gap is in
docs/engine_notes.md); the engine's own figure is the one --precision=int8 judges by.

    python bench/int8_sensitivity.py                       # ResNet-50 v1, res5_3_branch2c_bn
    python bench/int8_sensitivity.py --residual_scale 1    # the random model as drawn
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from bench.precision import calibration_images  # noqa: E402

PERCENTILE = 0.99999


def simulated(spec, values, images, layer, keep, act_bits=8, weight_bits=8):
    """Pooled-feature cosine per image of `layer` with every quantizable op not in `keep`
    rounded, against the fp32 network."""
    from resnet.runtime import engine
    from resnet.runtime.network import Network
    from resnet.runtime.paddle_env import paddle

    quantized = {n.name for n in engine.quantizable_nodes(spec, [layer])} - set(keep)
    seen: dict[str, list] = {}
    scales: dict[str, float] = {}

    class Rounding(Network):
        def _apply(self, node, args):
            if node.name in quantized:
                x = args[0]
                if node.name not in scales:  # calibration pass
                    seen.setdefault(node.name, []).append(np.abs(x.numpy()).ravel()[::7])
                else:
                    top = 2 ** (act_bits - 1) - 1
                    s = scales[node.name] / top
                    args = [paddle.clip(paddle.round(x / s), -top, top) * s, *args[1:]]
            return super()._apply(node, args)

    want = Network(spec).load_params(values).run(images, [layer])[layer]
    net = Rounding(spec).load_params(values)
    net.run(images, [layer])
    scales.update({k: float(np.quantile(np.concatenate(v), PERCENTILE)) or 1.0
                   for k, v in seen.items()})
    top = 2 ** (weight_bits - 1) - 1
    for name in quantized:
        w = net.layers[name].weight
        value = w.numpy()
        axis = 0 if value.ndim == 4 else 1  # conv (out, in, kh, kw); fc (in, out)
        reduce = tuple(i for i in range(value.ndim) if i != axis)
        s = np.maximum(np.abs(value).max(axis=reduce, keepdims=True), 1e-30) / top
        w.set_value((np.clip(np.round(value / s), -top, top) * s).astype(np.float32))
    return engine.pooled_cosine(net.run(images, [layer])[layer], want)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="resnet50_v1")
    p.add_argument("--layer", default="res5_3_branch2c_bn")
    p.add_argument("--residual_scale", type=float, default=0.25)
    args = p.parse_args()
    from vgg_weights import seeded_weights, vgg_weights

    from resnet.models import build_arch
    from resnet.models.preprocessing import V1
    from resnet.runtime import engine
    from resnet.runtime.network import Network

    spec = build_arch(args.arch)
    has_bn = any(n.op == "bn" for n in spec)
    values = (seeded_weights(args.arch, residual_scale=args.residual_scale) if has_bn
              else vgg_weights(args.arch))
    with tempfile.TemporaryDirectory() as work:
        images = calibration_images(work, V1)
    layer = args.layer
    nodes = engine.quantizable_nodes(spec, [layer])
    print(f"{args.arch} at {layer}: {len(images)} calibration images; residual branches "
          f"x{args.residual_scale}; simulated 8-bit rounding, pooled cosine min / median\n")
    print("| model | ops in fp32 | cosine min | median |\n|---|---|---|---|")

    def row(label, cos, kept="-"):
        print(f"| {label} | {kept} | {cos.min():.4f} | {np.median(cos):.4f} |", flush=True)

    net = Network(spec).load_params(values)
    want = net.run(images, [layer])[layer]
    rng = np.random.default_rng(0)
    for noise in (0.003, 0.01):
        x = images + noise * images.std() * rng.standard_normal(images.shape, np.float32)
        row(f"fp32 with input noise {noise:.1%} of the images' spread",
            engine.pooled_cosine(net.run(x, [layer])[layer], want))
    sensitive = [nodes[i].name for i in engine.sensitive_ops(spec, [layer])]
    groups = {f"int8 level {i}": [nodes[k].name for k in keep]
              for i, keep in enumerate(engine.int8_levels(spec, [layer]))}
    groups.update({
        "the stem kept": [nodes[0].name],
        "the shortcut projections kept": [n for n in sensitive[1:] if n != nodes[-1].name],
        "the last stage kept": [n.name for n in nodes if n.shape[1:] == nodes[-1].shape[1:]],
    })
    for label, keep in groups.items():
        row(label, simulated(spec, values, images, layer, keep), len(keep))
    row("everything rounded, 16-bit activations", simulated(spec, values, images, layer, (), 16))
    row("everything rounded, 16-bit weights",
        simulated(spec, values, images, layer, (), 8, 16))


if __name__ == "__main__":
    main()
