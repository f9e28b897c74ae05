"""The Xception family (Chollet 2017), as Keras applications builds it: a 299x299 input, an
entry flow of two plain convs and three downsampling blocks, eight middle blocks and an exit
block, all made of depthwise-separable convolutions with residual connections, global
average pooling to 2048 and a 1000-way fc.

Names are Keras' layer names: `block1_conv1` .. `block1_conv2_act` (the stem), then per block
`blockK_sepconv{i}` (the separable conv's output), `blockK_sepconv{i}_bn`, the ReLUs
`blockK_sepconv{i}_act` (as Keras names them: before the conv they feed, except in block 14,
where they follow it), `blockK_pool`. A separable conv is two nodes: `..._depthwise` (3x3,
one filter per channel) and the pointwise 1x1 conv named as Keras' layer. The residual 1x1
convs, which Keras leaves unnamed, are `blockK_residual` with `blockK_residual_bn`; each
block's sum is `blockK_add`. The head is `avgpool` (2048), `fc` (logits) and `output`
(softmax). No conv has a bias; batch norm eps is 1e-3.

Keras pads its stride-2 max pools TensorFlow's "same" way: the total padding split with the
larger half after, so at 74x74 the pool pads one row and column at the bottom and right only.
timm's `legacy_xception` (the Keras weights ported to PyTorch) pads one on every side and
keeps PyTorch's eps 1e-5: the `legacy_xception` network, which is not Keras-exact.
"""
from __future__ import annotations

from resnet.models.archs import ARCHS
from resnet.models.family import Arch, Family
from resnet.models.graph import Nodes, Spec

INPUT_SIZE, NUM_CLASSES, EPS = 299, 1000, 1e-3
#: the entry flow's downsampling blocks -> the width of their separable and residual convs
ENTRY = {2: 128, 3: 256, 4: 728}
MIDDLE = range(5, 13)


def block_of(name: str) -> str | None:
    """`blockK` of a layer (`block3_sepconv1_bn` -> block3)."""
    head = name.split("_", 1)[0]
    return head if head.startswith("block") and head[5:].isdigit() else None


class XceptionFamily(Family):
    name = "xception"

    def title(self, spec):
        return {"legacy_xception": "Xception (timm legacy_xception: symmetric pools, "
                                   "BN eps 1e-5)"}.get(spec.arch, "Xception")

    def default_features(self, spec):
        return ["avgpool"]

    def cluster_of(self, name):
        return block_of(name)

    def cluster_label(self, spec, block, names):
        return f"{block}: " + "x".join(map(str, spec[names[-1]].shape))


FAMILY = XceptionFamily()


def same_pads(size: int, k: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding of one side: (before, after), the odd one after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


class _Nodes(Nodes):
    def __init__(self, eps: float, tf_same: bool):
        super().__init__()
        self.eps, self.tf_same = eps, tf_same

    def conv_bn(self, name, src, filters, size, stride=1):
        """A plain conv (valid padding, no bias) and its batch norm `{name}_bn`."""
        x = self.add(name, "conv", [src], filters=filters, channels=self.shape(src)[0],
                     size=size, stride=stride, pad=0, bias=False)
        return self.add(f"{name}_bn", "bn", [x], act=None, eps=self.eps)

    def sepconv_bn(self, name, src, filters):
        """Depthwise 3x3 (pad 1) then pointwise 1x1, no biases, then `{name}_bn`."""
        c = self.shape(src)[0]
        x = self.add(f"{name}_depthwise", "conv", [src], filters=c, channels=c, size=3,
                     stride=1, pad=1, groups=c, bias=False)
        x = self.add(name, "conv", [x], filters=filters, channels=c, size=1, stride=1, pad=0,
                     bias=False)
        return self.add(f"{name}_bn", "bn", [x], act=None, eps=self.eps)

    def pool(self, name, src):
        """Max 3x3 / 2: TF "same" padding (Keras) or one on every side (timm)."""
        _, h, w = self.shape(src)
        pad = (*same_pads(h, 3, 2), *same_pads(w, 3, 2)) if self.tf_same else 1
        return self.add(name, "pool", [src], type="max", size=3, stride=2, pad=pad,
                        ceil=False)


def _build(arch: str, eps: float = EPS, tf_same: bool = True) -> Spec:
    n = _Nodes(eps, tf_same)
    x = n.add("input", "data", [], (3, INPUT_SIZE, INPUT_SIZE))
    x = n.add("block1_conv1_act", "relu", [n.conv_bn("block1_conv1", x, 32, 3, stride=2)])
    x = n.add("block1_conv2_act", "relu", [n.conv_bn("block1_conv2", x, 64, 3)])
    for k, width in ENTRY.items():
        b = f"block{k}"
        res = n.conv_bn(f"{b}_residual", x, width, 1, stride=2)
        y = x if k == 2 else n.add(f"{b}_sepconv1_act", "relu", [x])
        y = n.sepconv_bn(f"{b}_sepconv1", y, width)
        y = n.add(f"{b}_sepconv2_act", "relu", [y])
        y = n.pool(f"{b}_pool", n.sepconv_bn(f"{b}_sepconv2", y, width))
        x = n.add(f"{b}_add", "addto", [y, res])
    for k in MIDDLE:
        b, y = f"block{k}", x
        for i in (1, 2, 3):
            y = n.sepconv_bn(f"{b}_sepconv{i}", n.add(f"{b}_sepconv{i}_act", "relu", [y]), 728)
        x = n.add(f"{b}_add", "addto", [y, x])
    res = n.conv_bn("block13_residual", x, 1024, 1, stride=2)
    y = n.sepconv_bn("block13_sepconv1", n.add("block13_sepconv1_act", "relu", [x]), 728)
    y = n.sepconv_bn("block13_sepconv2", n.add("block13_sepconv2_act", "relu", [y]), 1024)
    x = n.add("block13_add", "addto", [n.pool("block13_pool", y), res])
    x = n.add("block14_sepconv1_act", "relu", [n.sepconv_bn("block14_sepconv1", x, 1536)])
    x = n.add("block14_sepconv2_act", "relu", [n.sepconv_bn("block14_sepconv2", x, 2048)])
    c, h, _ = n.shape(x)
    x = n.add("avgpool", "pool", [x], type="avg", size=h, stride=1, pad=0, ceil=False)
    x = n.add("fc", "fc", [x], act=None, out=NUM_CLASSES, **{"in": c})
    n.add("output", "softmax", [x])
    return Spec(0, tuple(n), arch, arch)


_ARCHS = {
    "xception": ({}, "Xception as Keras builds it: 299 input, separable convs, TF 'same' "
                     "max pools, avgpool 2048"),
    "legacy_xception": ({"eps": 1e-5, "tf_same": False},
                        "Xception as timm's legacy_xception builds it: pools padded on every "
                        "side, BN eps 1e-5 (not Keras-exact)"),
}
for _name, (_kw, _summary) in _ARCHS.items():
    ARCHS.register(_name)(Arch(_name, FAMILY, lambda n=_name, kw=_kw: _build(n, **kw),
                               _summary))
