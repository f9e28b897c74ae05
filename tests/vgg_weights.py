"""Seeded weights for tests (VGG, Inception), shared by the tests of a process (a VGG is 0.5 GB).

Random conv and fc weights with He-style scales, drawn in float32 (params.random_params draws
the fc layers in float64, 4 s for a VGG; the values' meaning is the same); for the
batch-norm variants each BN's
moving mean and variance are the statistics of its input over a probe batch of real photos
(the example images), so every layer's activations are normalised as in a trained network
and no layer is dead or saturated. Values are v1 parameter arrays keyed by file name
(`_conv1_1_conv.w0`, ...), as params.save_model writes them.
"""
import functools
import os

import numpy as np

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "example")
PHOTOS = ("astronaut.jpg", "cat.jpg", "coffee.jpg", "rocket.jpg")


def probe_batch(recipe=None) -> np.ndarray:
    """(N, 3, 224, 224) float32: the example photos through `recipe` (default v1's)."""
    from resnet.inputs import imaging
    from resnet.models.preprocessing import V1

    return np.concatenate([imaging.preprocess(os.path.join(EXAMPLES, n), recipe or V1)
                           for n in PHOTOS])


def _random(spec, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for node in spec:
        for suffix, shape in node.params():
            if node.op == "bn":
                value = node.operation.random(suffix, shape, rng)
            elif suffix == "wbias":
                value = rng.normal(0.0, 0.05, shape)
            else:  # conv (out, in, kh, kw) and fc (in, out): fan-in scaled
                fan_in = int(np.prod(shape[1:])) if node.op == "conv" else shape[0]
                value = rng.standard_normal(shape, dtype=np.float32)
                value *= np.float32(np.sqrt((2.0 if node.op == "conv" else 1.0) / fan_in))
            out[f"_{node.name}.{suffix}"] = np.asarray(value, dtype=np.float32)
    return out


def vgg_weights(arch: str, seed: int = 3) -> dict:
    """v1 parameter arrays of `arch` (vgg16, vgg16_bn, vgg19, vgg19_bn), drawn once per
    process (a VGG's 138M values take seconds): a new dict, the arrays shared and never
    changed in place."""
    return dict(seeded_weights(arch, seed) if arch.endswith("_bn") else _plain(arch, seed))


@functools.lru_cache(maxsize=2)
def _plain(arch: str, seed: int) -> dict:
    from resnet.models import build_arch

    return _random(build_arch(arch), seed)


@functools.lru_cache(maxsize=None)  # a process asks for at most a few GB of them
def seeded_weights(arch: str, seed: int = 3, recipe=None, residual_scale: float = 1.0) -> dict:
    """Seeded v1 parameter arrays of any architecture with batch norms, each BN's statistics
    taken from its input over two probe photos (preprocessed by `recipe`, default v1's);
    cached per process.

    `residual_scale` multiplies the output of each residual branch (the last input of a
    ResNet `addto`: its final batch norm's gamma and beta, or conv's weights). At 1, a deep
    ResNet is chaotic: every block adds a branch as large as the trunk's own change, and a
    perturbation far below a JPEG's pixel rounding moves its last features past the int8
    bound in fp32 already. A trained ResNet's branches are small corrections to the trunk,
    and its features do not move for sub-pixel noise; at 0.25 these barely do either
    (docs/engine_notes.md), which makes it the model for measuring reduced precision.
    """
    from resnet.models import build_arch
    from resnet.runtime.network import Network
    from resnet.runtime.paddle_env import paddle

    spec = build_arch(arch)
    values = _random(spec, seed)
    if residual_scale != 1.0:
        nodes = {n.name: n for n in spec}
        for node in spec:
            if node.op == "addto":
                branch = nodes[node.inputs[-1]]
                for suffix in ("w0", "wbias"):  # gamma and beta, or weights and bias
                    key = f"_{branch.name}.{suffix}"
                    if key in values:
                        values[key] = values[key] * np.float32(residual_scale)
    net = Network(spec).load_params(values)
    out = {}
    with paddle.no_grad():  # one pass; each BN takes its input's statistics before it runs
        for node in spec:
            args = [out[i] for i in node.inputs] or [paddle.to_tensor(probe_batch(recipe)[:2])]
            if node.op == "bn":
                y = args[0].numpy()
                mean, var = y.mean(axis=(0, 2, 3)), y.var(axis=(0, 2, 3))
                values[f"_{node.name}.w1"] = mean.astype(np.float32)
                values[f"_{node.name}.w2"] = var.astype(np.float32)
                net.layers[node.name]._mean.set_value(values[f"_{node.name}.w1"])
                net.layers[node.name]._variance.set_value(values[f"_{node.name}.w2"])
            out[node.name] = net._apply(node, args)
    return values
