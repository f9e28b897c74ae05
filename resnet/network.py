"""The Paddle executor: runs the spec's nodes in order and returns exactly the requested layers.

It computes only the ancestors of what was asked for, stops after the last of them, and drops
each intermediate once its last consumer has run, so memory stays at the live frontier.
"""
from __future__ import annotations

import numpy as np

from . import params as params_io
from .errors import ResnetError
from .paddle_env import paddle
from .spec import BN_EPSILON, Spec
from .spec import build as build_spec

nn = paddle.nn
F = paddle.nn.functional


def _make_layer(node):
    a = node.attrs
    if node.op == "conv":
        return nn.Conv2D(a["channels"], a["filters"], a["size"], stride=a["stride"],
                         padding=a["pad"], bias_attr=False)
    if node.op == "bn":
        return nn.BatchNorm2D(node.shape[0], epsilon=BN_EPSILON)
    if node.op == "fc":
        return nn.Linear(a["in"], a["out"])
    return None


class Network(nn.Layer):
    """A v1 ResNet built from a Spec, holding one Paddle sublayer per conv, bn and fc node."""

    def __init__(self, spec: Spec):
        super().__init__()
        self.spec = spec
        self.layers = nn.LayerDict()
        for node in spec:
            layer = _make_layer(node)
            if layer is not None:
                self.layers[node.name] = layer
        self.eval()

    def load_params(self, values: dict[str, np.ndarray]) -> "Network":
        """Copy v1 parameter arrays (keyed by file name) into the sublayers."""
        for node in self.spec:
            if node.name not in self.layers:
                continue
            layer = self.layers[node.name]
            get = lambda suffix: values[f"_{node.name}.{suffix}"]  # noqa: E731
            if node.op == "conv":
                layer.weight.set_value(get("w0"))
            elif node.op == "bn":
                layer.weight.set_value(get("w0"))
                layer._mean.set_value(get("w1"))
                layer._variance.set_value(np.maximum(get("w2"), 0.0))
                layer.bias.set_value(get("wbias"))
            elif node.op == "fc":
                layer.weight.set_value(get("w0"))
                layer.bias.set_value(get("wbias"))
        return self

    @paddle.jit.not_to_static  # plain Python over the spec, also when compiled (engine.py)
    def plan(self, outputs) -> list:
        """The nodes needed for `outputs`, in order, each with the names it can free after it."""
        needed = set()
        stack = list(outputs)
        while stack:
            name = stack.pop()
            if name not in needed:
                needed.add(name)
                stack.extend(self.spec[name].inputs)
        order = [n for n in self.spec if n.name in needed]
        last_use = {}
        for i, node in enumerate(order):
            for src in node.inputs:
                last_use[src] = i
        keep = set(outputs)
        frees = [[] for _ in order]
        for src, i in last_use.items():
            if src not in keep:
                frees[i].append(src)
        return list(zip(order, frees))

    def forward(self, x, outputs=("output",)):
        """Paddle tensors of the requested layers, keyed by name, for a (N, 3, 224, 224) batch."""
        outputs = self.spec.check_layers(list(outputs))
        values = {}
        for node, frees in self.plan(outputs):
            if node.op == "data":
                y = x
            else:
                args = [values[src] for src in node.inputs]
                y = self._apply(node, args)
            values[node.name] = y
            for src in frees:
                del values[src]
        return {name: values[name] for name in outputs}

    @paddle.jit.not_to_static
    def _apply(self, node, args):
        a = node.attrs
        if node.op == "conv":
            return self.layers[node.name](args[0])
        if node.op == "bn":
            y = self.layers[node.name](args[0])
            return F.relu(y) if a["act"] == "relu" else y
        if node.op == "pool":
            if a["type"] == "max":
                return F.max_pool2d(args[0], a["size"], a["stride"], a["pad"], ceil_mode=a["ceil"])
            return F.avg_pool2d(args[0], a["size"], a["stride"], a["pad"], ceil_mode=a["ceil"],
                                exclusive=False)
        if node.op == "addto":
            return F.relu(args[0] + args[1])
        if node.op == "fc":
            return F.softmax(self.layers[node.name](paddle.flatten(args[0], 1)), axis=-1)
        raise ResnetError(f"unknown op {node.op!r} in layer {node.name}")

    def run(self, batch: np.ndarray, outputs=("output",)) -> dict[str, np.ndarray]:
        """Numpy in, numpy out: float32 arrays shaped (N, *layer shape)."""
        with paddle.no_grad():
            result = self.forward(paddle.to_tensor(np.ascontiguousarray(batch, np.float32)),
                                  outputs)
            return {k: v.numpy() for k, v in result.items()}


def load(model_dir: str, layer_num: int = 50, variant: str | None = None) -> Network:
    """A ready Network with the v1 parameter files of `model_dir` loaded and validated.

    `variant` None: the one the directory's model.json names, else v1 (converted models).
    """
    from .modelinfo import default_variant

    spec = build_spec(layer_num, variant or default_variant(model_dir))
    return Network(spec).load_params(params_io.load_model(model_dir, spec))
