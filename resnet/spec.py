"""The network spec: the one description of a ResNet that everything else derives from.

The executor, parameter file names and shapes, the layer listing and the diagram all read
this list of nodes; nothing else in the package knows the topology.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .errors import ResnetError

#: Blocks per stage (res2, res3, res4, res5) for each supported depth.
DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
          152: (3, 8, 36, 3)}
#: Depths built from basic blocks (two 3x3 convs); the others use bottlenecks (1x1, 3x3, 1x1).
BASIC_DEPTHS = (18, 34)
#: (bottleneck width, output width) per stage; a basic block's width is the first number.
STAGE_WIDTHS = ((64, 256), (128, 512), (256, 1024), (512, 2048))
#: v1: the zoo's Caffe-style net (stride on the first 1x1, ceil-mode max pool without padding).
#: v1.5: paddle.vision / torchvision / timm (stride on the 3x3, max pool pad 1, floor mode).
VARIANTS = ("v1", "v1.5")
INPUT_SIZE = 224
NUM_CLASSES = 1000
BN_EPSILON = 1e-5


@dataclass(frozen=True)
class Node:
    """One named layer: its op, the names it reads, its attributes and its output shape (C, H, W)."""

    name: str
    op: str  # data | conv | bn | pool | addto | fc
    inputs: tuple = ()
    attrs: dict = field(default_factory=dict, hash=False, compare=False)
    shape: tuple = ()

    def params(self) -> list[tuple[str, tuple]]:
        """(file suffix, shape) of each parameter this node owns, in v1 naming."""
        a = self.attrs
        if self.op == "conv":
            return [("w0", (a["filters"], a["channels"], a["size"], a["size"]))]
        if self.op == "bn":
            c = self.shape[0]
            return [("w0", (c,)), ("w1", (c,)), ("w2", (c,)), ("wbias", (c,))]
        if self.op == "fc":
            return [("w0", (a["in"], a["out"])), ("wbias", (a["out"],))]
        return []

    @property
    def kind(self) -> str:
        """Human-readable type, as the diagram and the layer listing show it."""
        a = self.attrs
        if self.op == "conv":
            return f"conv {a['size']}x{a['size']}/{a['stride']}"
        if self.op == "bn":
            return "batch norm + relu" if a["act"] == "relu" else "batch norm"
        if self.op == "pool":
            return f"{a['type']} pool {a['size']}x{a['size']}/{a['stride']}"
        if self.op == "addto":
            return "addto + relu"
        if self.op == "fc":
            return "fc + softmax"
        return self.op


@dataclass(frozen=True)
class Spec:
    layer_num: int
    nodes: tuple
    variant: str = "v1"

    def __post_init__(self):
        object.__setattr__(self, "_index", {n.name: i for i, n in enumerate(self.nodes)})

    def __iter__(self):
        return iter(self.nodes)

    def __len__(self):
        return len(self.nodes)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[self._index[name]]

    def __contains__(self, name) -> bool:
        return name in self._index

    def index(self, name: str) -> int:
        return self._index[name]

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def param_files(self) -> list[tuple[str, tuple]]:
        """Every v1 parameter file name (`_<layer>.<suffix>`) with its shape, in network order."""
        return [(f"_{n.name}.{suffix}", shape) for n in self.nodes for suffix, shape in n.params()]

    def default_features(self) -> list[str]:
        """The last block's final conv and bn: v1's default extract layers at every depth."""
        bn = self.nodes[-3].inputs[1]  # last addto(shortcut, bn) -> avgpool -> output
        return [self[bn].inputs[0], bn]

    def check_layers(self, names) -> list[str]:
        """The names as a list, or a ResnetError naming each unknown one with its close matches."""
        import difflib

        names = [n.strip() for n in names if n.strip()]
        if not names:
            raise ResnetError("no output layer given (--output_layer)")
        bad = [n for n in names if n not in self]
        if bad:
            hints = []
            for n in bad:
                close = difflib.get_close_matches(n, self.names, n=5, cutoff=0.6)
                hints.append(f"'{n}'" + (f" (did you mean: {', '.join(close)}?)" if close else ""))
            raise ResnetError(
                f"unknown output layer {'; '.join(hints)} in ResNet-{self.layer_num}; "
                "list the layers with --job=layers"
            )
        return names


def _conv_out(size: int, k: int, stride: int, pad: int, ceil: bool = False) -> int:
    span = size + 2 * pad - k
    return 1 + (math.ceil(span / stride) if ceil else span // stride)


def build(layer_num: int = 50, variant: str = "v1") -> Spec:
    """The ResNet with `layer_num` layers (18, 34, 50, 101, 152) in `variant` (v1, v1.5).

    Layer names are v1's in every variant and depth; a basic block's two 3x3 convs are
    branch2a and branch2b, and a projection branch1 exists only where the shape changes.
    """
    try:
        blocks = DEPTHS[int(layer_num)]
    except (KeyError, TypeError, ValueError):
        zoo = ", ".join(str(d) for d in DEPTHS if d not in BASIC_DEPTHS)
        basic = ", ".join(str(d) for d in BASIC_DEPTHS)
        raise ResnetError(f"unsupported layer_num {layer_num!r}: choose one of {zoo} (the v1 "
                          f"zoo's depths) or {basic} (basic blocks)") from None
    if variant not in VARIANTS:
        raise ResnetError(f"unsupported variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    layer_num, v1 = int(layer_num), variant == "v1"
    basic = layer_num in BASIC_DEPTHS

    nodes: list[Node] = []

    def add(name, op, inputs, shape, **attrs):
        nodes.append(Node(name, op, tuple(inputs), attrs, tuple(shape)))
        return name

    def conv_bn(prefix, src, filters, size, stride, pad, act):
        channels, h, w = _shape(src)
        oh, ow = _conv_out(h, size, stride, pad), _conv_out(w, size, stride, pad)
        conv = add(f"{prefix}_conv", "conv", [src], (filters, oh, ow), filters=filters,
                   channels=channels, size=size, stride=stride, pad=pad)
        return add(f"{prefix}_bn", "bn", [conv], (filters, oh, ow), act=act)

    def _shape(name):
        return next(n.shape for n in reversed(nodes) if n.name == name)

    x = add("input", "data", [], (3, INPUT_SIZE, INPUT_SIZE))
    x = conv_bn("conv1", x, 64, 7, 2, 3, "relu")
    c, h, w = _shape(x)
    pad, ceil = (0, True) if v1 else (1, False)
    ph, pw = _conv_out(h, 3, 2, pad, ceil), _conv_out(w, 3, 2, pad, ceil)
    x = add("pool1", "pool", [x], (c, ph, pw), type="max", size=3, stride=2, pad=pad, ceil=ceil)

    for stage, (count, (mid, out)) in enumerate(zip(blocks, STAGE_WIDTHS), start=2):
        out = mid if basic else out
        for j in range(1, count + 1):
            p = f"res{stage}_{j}"
            stride = 2 if (j == 1 and stage > 2) else 1
            if stride != 1 or _shape(x)[0] != out:
                shortcut = conv_bn(f"{p}_branch1", x, out, 1, stride, 0, None)
            else:
                shortcut = x
            if basic:
                b = conv_bn(f"{p}_branch2a", x, mid, 3, stride, 1, "relu")
                b = conv_bn(f"{p}_branch2b", b, out, 3, 1, 1, None)
            else:  # v1 strides the first 1x1 (Caffe), v1.5 the 3x3
                b = conv_bn(f"{p}_branch2a", x, mid, 1, stride if v1 else 1, 0, "relu")
                b = conv_bn(f"{p}_branch2b", b, mid, 3, 1 if v1 else stride, 1, "relu")
                b = conv_bn(f"{p}_branch2c", b, out, 1, 1, 0, None)
            x = add(f"{p}_addto", "addto", [shortcut, b], _shape(b), act="relu")

    c, h, w = _shape(x)
    x = add("avgpool", "pool", [x], (c, h - 6, w - 6), type="avg", size=7, stride=1, pad=0,
            ceil=False)
    c, h, w = _shape(x)
    add("output", "fc", [x], (NUM_CLASSES,), act="softmax", out=NUM_CLASSES, **{"in": c * h * w})
    return Spec(layer_num, tuple(nodes), variant)
