"""Seeded VGG weights for tests, shared by every VGG test in a process (they are 0.5 GB).

Random conv and fc weights with He-style scales; for the batch-norm variants each BN's
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


@functools.lru_cache(maxsize=2)
def vgg_weights(arch: str, seed: int = 3) -> dict:
    """v1 parameter arrays of `arch` (vgg16, vgg16_bn, vgg19, vgg19_bn); cached per process."""
    from resnet.modelio import params
    from resnet.models import build_arch

    spec = build_arch(arch)
    values = params.random_params(spec, seed)
    if not arch.endswith("_bn"):
        return values
    from resnet.runtime.network import Network
    from resnet.runtime.paddle_env import paddle

    net = Network(spec).load_params(values)
    out = {}
    with paddle.no_grad():  # one pass; each BN takes its input's statistics before it runs
        for node in spec:
            args = [out[i] for i in node.inputs] or [paddle.to_tensor(probe_batch())]
            if node.op == "bn":
                y = args[0].numpy()
                mean, var = y.mean(axis=(0, 2, 3)), y.var(axis=(0, 2, 3))
                values[f"_{node.name}.w1"] = mean.astype(np.float32)
                values[f"_{node.name}.w2"] = var.astype(np.float32)
                net.layers[node.name]._mean.set_value(values[f"_{node.name}.w1"])
                net.layers[node.name]._variance.set_value(values[f"_{node.name}.w2"])
            out[node.name] = net._apply(node, args)
    return values
