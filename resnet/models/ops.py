"""One definition per op: its parameter files, how it reads in listings, how it runs.

The executor, the parameter files, random weights, the diagram, the layer table and the
importers ask a node's Op instead of branching on op names. Running is written against the
Paddle module handed in (`pd`), so this file never imports Paddle itself.
"""
from __future__ import annotations

import numpy as np

from resnet.registry import Registry

OPS = Registry("op")


def _register(name: str):
    """Register one instance of the decorated Op class under `name`."""
    return lambda cls: OPS.register(name)(cls())


class Op:
    """The base: a parameterless op."""

    #: diagram fill colour, so convs, batch norms and joins read apart at a glance
    fill = "white"
    #: parameter suffixes that are statistics, not learned (listed apart in --job=layers)
    statistics: tuple = ()

    def params(self, node) -> list[tuple[str, tuple]]:
        """(file suffix, shape) of each parameter the node owns, in v1 naming."""
        return []

    def kind(self, node) -> str:
        return node.op

    def make_layer(self, node, pd):
        """The Paddle sublayer holding the node's parameters, or None."""
        return None

    def load(self, node, layer, get) -> None:
        """Copy the node's parameter arrays (`get(suffix)`) into its sublayer."""

    def apply(self, node, layer, args, pd):
        raise NotImplementedError

    def random(self, suffix: str, shape: tuple, rng) -> np.ndarray:
        """Seeded random values that keep activations sane through any depth (tests, demo)."""
        raise NotImplementedError

    def foreign_leaf(self, suffix: str, bn_names: dict) -> str:
        """The parameter's leaf name in torch / Paddle checkpoints ('weight', 'bias', ...)."""
        return "weight" if suffix == "w0" else "bias"

    def foreign_transposed(self, suffix: str) -> bool:
        """Whether checkpoints that store weights (out, in) hold this one transposed."""
        return False


@_register("data")
class Data(Op):
    fill = "#eeeeee"

    def apply(self, node, layer, args, pd):
        return args[0]


@_register("conv")
class Conv(Op):
    fill = "#cfe2f3"

    def params(self, node):
        a = node.attrs
        return [("w0", (a["filters"], a["channels"], a["size"], a["size"]))]

    def kind(self, node):
        a = node.attrs
        return f"conv {a['size']}x{a['size']}/{a['stride']}"

    def make_layer(self, node, pd):
        a = node.attrs
        return pd.nn.Conv2D(a["channels"], a["filters"], a["size"], stride=a["stride"],
                            padding=a["pad"], bias_attr=False)

    def load(self, node, layer, get):
        layer.weight.set_value(get("w0"))

    def apply(self, node, layer, args, pd):
        return layer(args[0])

    def random(self, suffix, shape, rng):
        fan_in = shape[1] * shape[2] * shape[3]
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))


@_register("bn")
class BatchNorm(Op):
    """Batch norm with its activation fused (v1's `_bn` layers): gamma, mean, var, beta."""

    fill = "#d9ead3"
    statistics = ("w1", "w2")

    def params(self, node):
        c = node.shape[0]
        return [("w0", (c,)), ("w1", (c,)), ("w2", (c,)), ("wbias", (c,))]

    def kind(self, node):
        return "batch norm + relu" if node.attrs["act"] == "relu" else "batch norm"

    def make_layer(self, node, pd):
        from resnet.models.graph import BN_EPSILON

        return pd.nn.BatchNorm2D(node.shape[0], epsilon=BN_EPSILON)

    def load(self, node, layer, get):
        layer.weight.set_value(get("w0"))
        layer._mean.set_value(get("w1"))
        layer._variance.set_value(np.maximum(get("w2"), 0.0))
        layer.bias.set_value(get("wbias"))

    def apply(self, node, layer, args, pd):
        y = layer(args[0])
        return pd.nn.functional.relu(y) if node.attrs["act"] == "relu" else y

    def random(self, suffix, shape, rng):
        # all four drawn for each suffix: the seeded stream (and every test model) stays as
        # it has always been
        return {"w0": rng.uniform(0.2, 0.6, shape),     # gamma
                "w1": rng.normal(0.0, 0.1, shape),      # moving mean
                "w2": rng.uniform(0.5, 1.5, shape),     # moving variance
                "wbias": rng.normal(0.0, 0.1, shape)}[suffix]

    def foreign_leaf(self, suffix, bn_names):
        return bn_names[suffix]


@_register("pool")
class Pool(Op):
    fill = "#fce5cd"

    def kind(self, node):
        a = node.attrs
        return f"{a['type']} pool {a['size']}x{a['size']}/{a['stride']}"

    def apply(self, node, layer, args, pd):
        a, F = node.attrs, pd.nn.functional
        if a["type"] == "max":
            return F.max_pool2d(args[0], a["size"], a["stride"], a["pad"], ceil_mode=a["ceil"])
        return F.avg_pool2d(args[0], a["size"], a["stride"], a["pad"], ceil_mode=a["ceil"],
                            exclusive=False)


@_register("addto")
class AddTo(Op):
    fill = "#ead1dc"

    def kind(self, node):
        return "addto + relu" if node.attrs.get("act") == "relu" else "addto"

    def apply(self, node, layer, args, pd):
        y = args[0] + args[1]  # pre-activation nets (v2) add without a ReLU
        return pd.nn.functional.relu(y) if node.attrs.get("act") == "relu" else y


@_register("fc")
class FullyConnected(Op):
    """fc + softmax; the weight is stored (in, out) as v1 wrote it."""

    fill = "#fff2cc"

    def params(self, node):
        a = node.attrs
        return [("w0", (a["in"], a["out"])), ("wbias", (a["out"],))]

    def kind(self, node):
        return "fc + softmax"

    def make_layer(self, node, pd):
        return pd.nn.Linear(node.attrs["in"], node.attrs["out"])

    def load(self, node, layer, get):
        layer.weight.set_value(get("w0"))
        layer.bias.set_value(get("wbias"))

    def apply(self, node, layer, args, pd):
        return pd.nn.functional.softmax(layer(pd.flatten(args[0], 1)), axis=-1)

    def foreign_transposed(self, suffix):
        return suffix == "w0"

    def random(self, suffix, shape, rng):
        scale = 1.0 / np.sqrt(shape[0]) if suffix == "w0" else 0.1
        return rng.standard_normal(shape) * scale
