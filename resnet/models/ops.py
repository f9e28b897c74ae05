"""One definition per op: its parameters, its output shape, how it reads in listings, how it runs.

The builders, the executor, the parameter files, random weights, the diagram, the layer table
and the importers ask a node's Op instead of branching on op names. Attributes a node leaves
out take the defaults below, so the v1 ResNet nodes (square kernels, symmetric pads, no bias,
eps 1e-5) keep the attributes, and the cache keys, they always had. Running is written
against the Paddle module handed in (`pd`), so this file never imports Paddle itself.

Imports only `resnet.registry`.
"""
from __future__ import annotations

import math

import numpy as np

from resnet.registry import Registry

OPS = Registry("op")
#: a batch norm's epsilon when its node does not say (Paddle's, PyTorch's and v1's)
DEFAULT_EPS = 1e-5


def _register(name: str):
    """Register one instance of the decorated Op class under `name`."""
    return lambda cls: OPS.register(name)(cls())


def pair(v) -> tuple[int, int]:
    """(h, w) of a size or stride given as one int or two."""
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


def pads(v) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of a pad given as one int, (h, w) or four values."""
    if isinstance(v, (int, np.integer)):
        return (int(v),) * 4
    v = tuple(int(x) for x in v)
    return (v[0], v[0], v[1], v[1]) if len(v) == 2 else v


def _paddle_pad(v):
    """A pad as Paddle takes it: the int itself when symmetric, else [top, bottom, left, right]."""
    p = pads(v)
    return p[0] if len(set(p)) == 1 else list(p)


def window_out(size: int, k: int, stride: int, before: int, after: int,
               ceil: bool = False) -> int:
    span = size + before + after - k
    return 1 + (math.ceil(span / stride) if ceil else span // stride)


def _spatial(shape, a, ceil=False):
    _, h, w = shape
    (kh, kw), (sh, sw), (t, b, left, r) = pair(a["size"]), pair(a["stride"]), pads(a["pad"])
    return window_out(h, kh, sh, t, b, ceil), window_out(w, kw, sw, left, r, ceil)


def _kernel_text(a) -> str:
    (kh, kw), (sh, sw) = pair(a["size"]), pair(a["stride"])
    stride = str(sh) if sh == sw else f"{sh}x{sw}"
    return f"{kh}x{kw}/{stride}"


class Op:
    """The base: a parameterless op that keeps its input's shape."""

    #: diagram fill colour, so convs, batch norms and joins read apart at a glance
    fill = "white"
    #: parameter suffixes that are statistics, not learned (listed apart in --job=layers)
    statistics: tuple = ()

    def params(self, node) -> list[tuple[str, tuple]]:
        """(file suffix, shape) of each parameter the node owns, in v1 naming."""
        return []

    def infer(self, attrs: dict, shapes: list[tuple]) -> tuple:
        """The output shape for these attributes and input shapes."""
        return tuple(shapes[0])

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
    """A convolution: `size`/`stride` an int or (h, w), `pad` an int or (top, bottom, left,
    right), `groups` (1; the channel count for a depthwise one), `bias` (False)."""

    fill = "#cfe2f3"

    def params(self, node):
        a = node.attrs
        kh, kw = pair(a["size"])
        out = [("w0", (a["filters"], a["channels"] // a.get("groups", 1), kh, kw))]
        return out + [("wbias", (a["filters"],))] if a.get("bias") else out

    def infer(self, attrs, shapes):
        return (attrs["filters"], *_spatial(shapes[0], attrs))

    def kind(self, node):
        a = node.attrs
        text = f"conv {_kernel_text(a)}"
        if a.get("groups", 1) > 1:
            text += " depthwise" if a["groups"] == a["channels"] else f" groups {a['groups']}"
        return text

    def make_layer(self, node, pd):
        a = node.attrs
        return pd.nn.Conv2D(a["channels"], a["filters"], pair(a["size"]),
                            stride=pair(a["stride"]), padding=_paddle_pad(a["pad"]),
                            groups=a.get("groups", 1), bias_attr=None if a.get("bias") else False)

    def load(self, node, layer, get):
        layer.weight.set_value(get("w0"))
        if node.attrs.get("bias"):
            layer.bias.set_value(get("wbias"))

    def apply(self, node, layer, args, pd):
        return layer(args[0])

    def random(self, suffix, shape, rng):
        if suffix == "wbias":
            return rng.normal(0.0, 0.05, shape)
        fan_in = shape[1] * shape[2] * shape[3]
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))


@_register("bn")
class BatchNorm(Op):
    """Batch norm, optionally with its ReLU fused (v1's `_bn` layers): gamma, mean, var, beta;
    `eps` per node (DEFAULT_EPS when the node does not say)."""

    fill = "#d9ead3"
    statistics = ("w1", "w2")

    def params(self, node):
        c = node.shape[0]
        return [("w0", (c,)), ("w1", (c,)), ("w2", (c,)), ("wbias", (c,))]

    def kind(self, node):
        return "batch norm + relu" if node.attrs.get("act") == "relu" else "batch norm"

    def make_layer(self, node, pd):
        return pd.nn.BatchNorm2D(node.shape[0], epsilon=eps(node))

    def load(self, node, layer, get):
        layer.weight.set_value(get("w0"))
        layer._mean.set_value(get("w1"))
        layer._variance.set_value(np.maximum(get("w2"), 0.0))
        layer.bias.set_value(get("wbias"))

    def apply(self, node, layer, args, pd):
        y = layer(args[0])
        return pd.nn.functional.relu(y) if node.attrs.get("act") == "relu" else y

    def random(self, suffix, shape, rng):
        # all four drawn for each suffix: the seeded stream (and every test model) stays as
        # it has always been
        return {"w0": rng.uniform(0.2, 0.6, shape),     # gamma
                "w1": rng.normal(0.0, 0.1, shape),      # moving mean
                "w2": rng.uniform(0.5, 1.5, shape),     # moving variance
                "wbias": rng.normal(0.0, 0.1, shape)}[suffix]

    def foreign_leaf(self, suffix, bn_names):
        return bn_names[suffix]


def eps(node) -> float:
    """A batch norm node's epsilon."""
    return float(node.attrs.get("eps", DEFAULT_EPS))


@_register("relu")
class Relu(Op):
    fill = "#f4cccc"

    def kind(self, node):
        return "relu"

    def apply(self, node, layer, args, pd):
        return pd.nn.functional.relu(args[0])


@_register("softmax")
class Softmax(Op):
    fill = "#fff2cc"

    def apply(self, node, layer, args, pd):
        return pd.nn.functional.softmax(args[0], axis=-1)


@_register("pool")
class Pool(Op):
    """Max or average pooling: `size`/`stride`/`pad` as Conv's, `ceil` (output size rounded
    up, Caffe's rule), `count_include_pad` (averages divide by the whole window, padding
    included: True unless the node says otherwise)."""

    fill = "#fce5cd"

    def infer(self, attrs, shapes):
        return (shapes[0][0], *_spatial(shapes[0], attrs, attrs.get("ceil", False)))

    def kind(self, node):
        return f"{node.attrs['type']} pool {_kernel_text(node.attrs)}"

    def apply(self, node, layer, args, pd):
        a, F = node.attrs, pd.nn.functional
        # Paddle takes a size and a stride as an int or as (h, w), as the node holds them
        size, stride, pad = a["size"], a["stride"], _paddle_pad(a["pad"])
        if a["type"] == "max":
            return F.max_pool2d(args[0], size, stride, pad, ceil_mode=a.get("ceil", False))
        return F.avg_pool2d(args[0], size, stride, pad, ceil_mode=a.get("ceil", False),
                            exclusive=not a.get("count_include_pad", True))


@_register("addto")
class AddTo(Op):
    fill = "#ead1dc"

    def kind(self, node):
        return "addto + relu" if node.attrs.get("act") == "relu" else "addto"

    def apply(self, node, layer, args, pd):
        y = args[0] + args[1]  # pre-activation nets (v2) add without a ReLU
        return pd.nn.functional.relu(y) if node.attrs.get("act") == "relu" else y


@_register("concat")
class Concat(Op):
    """Channels of its inputs, in input order (Inception's branches)."""

    fill = "#ead1dc"

    def infer(self, attrs, shapes):
        return (sum(s[0] for s in shapes), *shapes[0][1:])

    def apply(self, node, layer, args, pd):
        return pd.concat(list(args), axis=1)


@_register("fc")
class FullyConnected(Op):
    """A fully connected layer on its input flattened in (C, H, W) order, `act` softmax,
    relu or None; the weight is stored (in, out) as v1 wrote it."""

    fill = "#fff2cc"

    def params(self, node):
        a = node.attrs
        return [("w0", (a["in"], a["out"])), ("wbias", (a["out"],))]

    def infer(self, attrs, shapes):
        return (attrs["out"],)

    def kind(self, node):
        act = node.attrs.get("act")
        return f"fc + {act}" if act else "fc"

    def make_layer(self, node, pd):
        return pd.nn.Linear(node.attrs["in"], node.attrs["out"])

    def load(self, node, layer, get):
        layer.weight.set_value(get("w0"))
        layer.bias.set_value(get("wbias"))

    def apply(self, node, layer, args, pd):
        y = layer(pd.flatten(args[0], 1))
        act = node.attrs.get("act")
        if act == "softmax":
            return pd.nn.functional.softmax(y, axis=-1)
        return pd.nn.functional.relu(y) if act == "relu" else y

    def foreign_transposed(self, suffix):
        return suffix == "w0"

    def random(self, suffix, shape, rng):
        scale = 1.0 / np.sqrt(shape[0]) if suffix == "w0" else 0.1
        return rng.standard_normal(shape) * scale
