"""The Inception v3 family (Szegedy et al. 2015, "Rethinking the Inception Architecture"), as
torchvision, timm, paddle.vision, MXNet Gluon and Keras define it: a 299x299 input, a stem of
five conv units and two max pools, eleven Inception blocks (three A, B, four C, D, two E)
whose branches are concatenated, global average pooling to 2048 and a 1000-way fc.

Names: the blocks are Keras' `mixed0` .. `mixed10` (the concatenated outputs); a conv unit
(conv, batch norm, ReLU) is named after its block and torchvision's branch module,
`mixed0_branch5x5_1`, with its taps `..._conv` and `..._bn` (these hold the parameters); the
stem units are `conv2d_1a` .. `conv2d_4a` with `pool1`, `pool2`; a pool inside a block is
`mixed0_pool`; E blocks also expose their inner concatenations
`mixed9_branch3x3` (Keras' `mixed9_0`) and `mixed9_branch3x3dbl`. The head is `avgpool`
(2048), `fc` (logits) and `output` (softmax). Convs have no bias.

Sources differ in the network itself in two ways, so each way is its own architecture:
whether a block's 3x3 average pool counts the zero padding (torchvision, timm, Gluon and
paddle.vision count it; Keras does not: `inception_v3_keras`), and batch norm's epsilon
(1e-3 everywhere but paddle.vision, whose BatchNorm2D keeps Paddle's 1e-5:
`inception_v3_paddle`; a variance cannot always absorb the difference, as it would go
negative below 1e-3).

`inception_v3_fid` is the network FID scores are computed with (TensorFlow's 2015
Inception graph, as pytorch-fid ports it): pools leaving the padding out, a max pool (3x3,
stride 1, pad 1) in the last block's pool branch, 1008 classes, and its pooled features
named `pool3` as the TF graph names them (its default features).
"""
from __future__ import annotations

from resnet.models.archs import ARCHS
from resnet.models.family import Arch, Family
from resnet.models.graph import Nodes, Spec

INPUT_SIZE, NUM_CLASSES, EPS = 299, 1000, 1e-3
#: block name -> torchvision's module (Mixed_5b ...), in network order
BLOCKS = {f"mixed{i}": m for i, m in enumerate(
    ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
     "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"))}
STEM = {"conv2d_1a": "Conv2d_1a_3x3", "conv2d_2a": "Conv2d_2a_3x3",
        "conv2d_2b": "Conv2d_2b_3x3", "conv2d_3b": "Conv2d_3b_1x1", "conv2d_4a": "Conv2d_4a_3x3"}


def block_of(name: str) -> str | None:
    """`mixed{i}` of a layer inside a block (`mixed3_branch3x3_conv` -> mixed3), else None."""
    head = name.split("_", 1)[0]
    return head if head in BLOCKS else None


class InceptionFamily(Family):
    name = "inception"

    def title(self, spec):
        return "Inception v3" + {"inception_v3_keras": " (Keras: pools leave the padding out)",
                                 "inception_v3_paddle": " (paddle.vision: BN eps 1e-5)",
                                 "inception_v3_fid": " (FID: TF 2015 graph, 1008 classes)"
                                 }.get(spec.arch, "")

    def default_features(self, spec):
        return ["pool3" if spec.arch == "inception_v3_fid" else "avgpool"]

    def cluster_of(self, name):
        return block_of(name)

    def cluster_label(self, spec, block, names):
        shape = spec[block].shape
        return f"{block} ({BLOCKS[block]}): " + "x".join(map(str, shape))


FAMILY = InceptionFamily()


class _Nodes(Nodes):
    def __init__(self, count_include_pad: bool, eps: float):
        super().__init__()
        self.include, self.eps = count_include_pad, eps

    def unit(self, name, src, filters, size, stride=1, pad=0):
        """conv (no bias) -> batch norm -> ReLU, named `name` after the ReLU."""
        c = self.shape(src)[0]
        x = self.add(f"{name}_conv", "conv", [src], filters=filters, channels=c, size=size,
                     stride=stride, pad=pad, bias=False)
        x = self.add(f"{name}_bn", "bn", [x], act=None, eps=self.eps)
        return self.add(name, "relu", [x])

    def avg(self, name, src, kind="avg"):
        """A block's 3x3/1/1 pool: average (the padding counted or not), or max (FID's
        last block)."""
        if kind == "max":
            return self.add(name, "pool", [src], type="max", size=3, stride=1, pad=1, ceil=False)
        return self.add(name, "pool", [src], type="avg", size=3, stride=1, pad=1, ceil=False,
                        count_include_pad=self.include)

    def max(self, name, src):
        return self.add(name, "pool", [src], type="max", size=3, stride=2, pad=0, ceil=False)


def _a(n: _Nodes, b: str, x: str, pool_features: int) -> str:
    one = n.unit(f"{b}_branch1x1", x, 64, 1)
    five = n.unit(f"{b}_branch5x5_2", n.unit(f"{b}_branch5x5_1", x, 48, 1), 64, 5, pad=2)
    dbl = n.unit(f"{b}_branch3x3dbl_1", x, 64, 1)
    dbl = n.unit(f"{b}_branch3x3dbl_2", dbl, 96, 3, pad=1)
    dbl = n.unit(f"{b}_branch3x3dbl_3", dbl, 96, 3, pad=1)
    pool = n.unit(f"{b}_branch_pool", n.avg(f"{b}_pool", x), pool_features, 1)
    return n.add(b, "concat", [one, five, dbl, pool])


def _b(n: _Nodes, b: str, x: str) -> str:
    three = n.unit(f"{b}_branch3x3", x, 384, 3, stride=2)
    dbl = n.unit(f"{b}_branch3x3dbl_1", x, 64, 1)
    dbl = n.unit(f"{b}_branch3x3dbl_2", dbl, 96, 3, pad=1)
    dbl = n.unit(f"{b}_branch3x3dbl_3", dbl, 96, 3, stride=2)
    return n.add(b, "concat", [three, dbl, n.max(f"{b}_pool", x)])


def _c(n: _Nodes, b: str, x: str, c7: int) -> str:
    one = n.unit(f"{b}_branch1x1", x, 192, 1)
    s = n.unit(f"{b}_branch7x7_1", x, c7, 1)
    s = n.unit(f"{b}_branch7x7_2", s, c7, (1, 7), pad=(0, 3))
    s = n.unit(f"{b}_branch7x7_3", s, 192, (7, 1), pad=(3, 0))
    d = n.unit(f"{b}_branch7x7dbl_1", x, c7, 1)
    d = n.unit(f"{b}_branch7x7dbl_2", d, c7, (7, 1), pad=(3, 0))
    d = n.unit(f"{b}_branch7x7dbl_3", d, c7, (1, 7), pad=(0, 3))
    d = n.unit(f"{b}_branch7x7dbl_4", d, c7, (7, 1), pad=(3, 0))
    d = n.unit(f"{b}_branch7x7dbl_5", d, 192, (1, 7), pad=(0, 3))
    pool = n.unit(f"{b}_branch_pool", n.avg(f"{b}_pool", x), 192, 1)
    return n.add(b, "concat", [one, s, d, pool])


def _d(n: _Nodes, b: str, x: str) -> str:
    three = n.unit(f"{b}_branch3x3_2", n.unit(f"{b}_branch3x3_1", x, 192, 1), 320, 3, stride=2)
    s = n.unit(f"{b}_branch7x7x3_1", x, 192, 1)
    s = n.unit(f"{b}_branch7x7x3_2", s, 192, (1, 7), pad=(0, 3))
    s = n.unit(f"{b}_branch7x7x3_3", s, 192, (7, 1), pad=(3, 0))
    s = n.unit(f"{b}_branch7x7x3_4", s, 192, 3, stride=2)
    return n.add(b, "concat", [three, s, n.max(f"{b}_pool", x)])


def _e(n: _Nodes, b: str, x: str, pool_type: str = "avg") -> str:
    one = n.unit(f"{b}_branch1x1", x, 320, 1)
    t = n.unit(f"{b}_branch3x3_1", x, 384, 1)
    t = n.add(f"{b}_branch3x3", "concat",
              [n.unit(f"{b}_branch3x3_2a", t, 384, (1, 3), pad=(0, 1)),
               n.unit(f"{b}_branch3x3_2b", t, 384, (3, 1), pad=(1, 0))])
    d = n.unit(f"{b}_branch3x3dbl_1", x, 448, 1)
    d = n.unit(f"{b}_branch3x3dbl_2", d, 384, 3, pad=1)
    d = n.add(f"{b}_branch3x3dbl", "concat",
              [n.unit(f"{b}_branch3x3dbl_3a", d, 384, (1, 3), pad=(0, 1)),
               n.unit(f"{b}_branch3x3dbl_3b", d, 384, (3, 1), pad=(1, 0))])
    pool = n.unit(f"{b}_branch_pool", n.avg(f"{b}_pool", x, pool_type), 192, 1)
    return n.add(b, "concat", [one, t, d, pool])


def _build(arch: str, count_include_pad: bool = True, eps: float = EPS,
           classes: int = NUM_CLASSES, last_pool: str = "avg",
           features: str = "avgpool") -> Spec:
    n = _Nodes(count_include_pad, eps)
    x = n.add("input", "data", [], (3, INPUT_SIZE, INPUT_SIZE))
    x = n.unit("conv2d_1a", x, 32, 3, stride=2)
    x = n.unit("conv2d_2a", x, 32, 3)
    x = n.unit("conv2d_2b", x, 64, 3, pad=1)
    x = n.max("pool1", x)
    x = n.unit("conv2d_3b", x, 80, 1)
    x = n.unit("conv2d_4a", x, 192, 3)
    x = n.max("pool2", x)
    for i, pool_features in enumerate((32, 64, 64)):
        x = _a(n, f"mixed{i}", x, pool_features)
    x = _b(n, "mixed3", x)
    for i, c7 in zip(range(4, 8), (128, 160, 160, 192)):
        x = _c(n, f"mixed{i}", x, c7)
    x = _d(n, "mixed8", x)
    x = _e(n, "mixed9", x)
    x = _e(n, "mixed10", x, last_pool)
    c, h, w = n.shape(x)
    x = n.add(features, "pool", [x], type="avg", size=h, stride=1, pad=0, ceil=False)
    x = n.add("fc", "fc", [x], act=None, out=classes, **{"in": c})
    n.add("output", "softmax", [x])
    return Spec(0, tuple(n), arch, arch)


_ARCHS = {
    "inception_v3": ({}, "Inception v3 (torchvision, timm, Gluon): 299 input, 11 concatenated "
                         "blocks, avgpool 2048"),
    "inception_v3_keras": ({"count_include_pad": False},
                           "Inception v3 as Keras builds it: block average pools leave the "
                           "zero padding out"),
    "inception_v3_paddle": ({"eps": 1e-5}, "Inception v3 as paddle.vision builds it: batch "
                                           "norm eps 1e-5"),
    "inception_v3_fid": ({"count_include_pad": False, "classes": 1008, "last_pool": "max",
                          "features": "pool3"},
                         "the FID Inception (TF 2015 graph, pytorch-fid): pools leave the "
                         "padding out, a max pool in mixed10, 1008 classes, pool3 2048"),
}
for _name, (_kw, _summary) in _ARCHS.items():
    ARCHS.register(_name)(Arch(_name, FAMILY, lambda n=_name, kw=_kw: _build(n, **kw),
                               _summary))
