"""The post-activation ResNet family (v1, v1-pad1, v1.5): bottlenecks at 50/101/152, basic
blocks at 18/34. Its depths, widths and node helpers serve the v2 family too (resnet_v2.py).

Registered in MODELS under its variant names; everything else reads the Spec it builds.
"""
from __future__ import annotations

import math

from resnet.models import MODELS
from resnet.models.graph import INPUT_SIZE, NUM_CLASSES, Node, Spec

#: Blocks per stage (res2, res3, res4, res5) for each supported depth.
DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
          152: (3, 8, 36, 3)}
#: Depths built from basic blocks (two 3x3 convs); the others use bottlenecks (1x1, 3x3, 1x1).
BASIC_DEPTHS = (18, 34)
#: (bottleneck width, output width) per stage; a basic block's width is the first number.
STAGE_WIDTHS = ((64, 256), (128, 512), (256, 1024), (512, 2048))
def _conv_out(size: int, k: int, stride: int, pad: int, ceil: bool = False) -> int:
    span = size + 2 * pad - k
    return 1 + (math.ceil(span / stride) if ceil else span // stride)


@MODELS.register("v1")
def resnet_v1(layer_num: int) -> Spec:
    """The v1 zoo's Caffe-style ResNet: stride on the first 1x1, ceil-mode max pool, no pad."""
    return _build(layer_num, "v1")


@MODELS.register("v1.5")
def resnet_v15(layer_num: int) -> Spec:
    """paddle.vision / torchvision / timm: stride on the 3x3, max pool pad 1, floor mode."""
    return _build(layer_num, "v1.5")


@MODELS.register("v1-pad1")
def resnet_v1_pad1(layer_num: int) -> Spec:
    """Keras applications, MXNet Gluon v1 and the ONNX zoo's v1: v1's strides (on the first
    1x1), but max pool pad 1, floor mode (the windows sit one pixel off v1's)."""
    return _build(layer_num, "v1-pad1")


resnet_v1.depths = resnet_v15.depths = resnet_v1_pad1.depths = tuple(DEPTHS)


class Nodes(list):
    """Nodes being built, with their output shapes."""

    def add(self, name, op, inputs, shape, **attrs):
        self.append(Node(name, op, tuple(inputs), attrs, tuple(shape)))
        return name

    def shape(self, name):
        return next(n.shape for n in reversed(self) if n.name == name)

    def conv(self, name, src, filters, size, stride, pad):
        channels, h, w = self.shape(src)
        out = (filters, _conv_out(h, size, stride, pad), _conv_out(w, size, stride, pad))
        return self.add(name, "conv", [src], out, filters=filters, channels=channels, size=size,
                        stride=stride, pad=pad)

    def bn(self, name, src, act):
        return self.add(name, "bn", [src], self.shape(src), act=act)

    def max_pool(self, src, pad, ceil):
        c, h, w = self.shape(src)
        return self.add("pool1", "pool", [src], (c, _conv_out(h, 3, 2, pad, ceil),
                                                 _conv_out(w, 3, 2, pad, ceil)),
                        type="max", size=3, stride=2, pad=pad, ceil=ceil)

    def head(self, src):
        c, h, w = self.shape(src)
        x = self.add("avgpool", "pool", [src], (c, h - 6, w - 6), type="avg", size=7, stride=1,
                     pad=0, ceil=False)
        c, h, w = self.shape(x)
        self.add("output", "fc", [x], (NUM_CLASSES,), act="softmax", out=NUM_CLASSES,
                 **{"in": c * h * w})


def _build(layer_num: int, variant: str) -> Spec:
    """The ResNet with `layer_num` layers (18, 34, 50, 101, 152) in `variant` (v1, v1-pad1,
    v1.5).

    Layer names are v1's in every variant and depth; a basic block's two 3x3 convs are
    branch2a and branch2b, and a projection branch1 exists only where the shape changes.
    """
    blocks = DEPTHS[layer_num]
    v1 = variant in ("v1", "v1-pad1")  # stride on the first 1x1
    basic = layer_num in BASIC_DEPTHS
    nodes = Nodes()

    def conv_bn(prefix, src, filters, size, stride, pad, act):
        return nodes.bn(f"{prefix}_bn", nodes.conv(f"{prefix}_conv", src, filters, size,
                                                   stride, pad), act)

    x = nodes.add("input", "data", [], (3, INPUT_SIZE, INPUT_SIZE))
    x = conv_bn("conv1", x, 64, 7, 2, 3, "relu")
    x = nodes.max_pool(x, *((0, True) if variant == "v1" else (1, False)))
    for stage, (count, (mid, out)) in enumerate(zip(blocks, STAGE_WIDTHS), start=2):
        out = mid if basic else out
        for j in range(1, count + 1):
            p = f"res{stage}_{j}"
            stride = 2 if (j == 1 and stage > 2) else 1
            if stride != 1 or nodes.shape(x)[0] != out:
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
            x = nodes.add(f"{p}_addto", "addto", [shortcut, b], nodes.shape(b), act="relu")
    nodes.head(x)
    return Spec(layer_num, tuple(nodes), variant)
