"""The ResNet family: v1 (the v1 Paddle zoo's Caffe-style net), v1-pad1 (Keras, MXNet Gluon
v1, the ONNX zoo's v1), v1.5 (paddle.vision, torchvision, timm) and v2 (pre-activation:
MXNet, the ONNX zoo's v2), at 18, 34, 50, 101 and 152 layers.

Names are v1's in every variant: `conv1_conv`, `resK_J_branch2a_conv`, `resK_J_addto`, ...;
this file is the one place that reads them apart (`block_of`, `parse_branch`). Registered
architectures: `resnet50` (v1.5), `resnet50_v1` (the v1 zoo), `resnet50_v1_pad1`,
`resnet50_v2`, and the same at every depth; `--layer_num`/`--variant` are the v1 spellings.
"""
from __future__ import annotations

import re
from typing import NamedTuple

from resnet.errors import ResnetError
from resnet.models.archs import ARCHS
from resnet.models.family import Arch, Family, Fold
from resnet.models.graph import Nodes, Spec

#: Blocks per stage (res2, res3, res4, res5) for each supported depth.
DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
          152: (3, 8, 36, 3)}
#: the v1 zoo's depths (named first in errors) and the default
ZOO_DEPTHS = (50, 101, 152)
#: Depths built from basic blocks (two 3x3 convs); the others use bottlenecks (1x1, 3x3, 1x1).
BASIC_DEPTHS = (18, 34)
#: (bottleneck width, output width) per stage; a basic block's width is the first number.
STAGE_WIDTHS = ((64, 256), (128, 512), (256, 1024), (512, 2048))
INPUT_SIZE, NUM_CLASSES = 224, 1000
#: variant -> (architecture name suffix, what it is)
VARIANTS = {
    "v1": ("_v1", "the v1 Paddle zoo's Caffe-style ResNet: stride on the first 1x1, max pool "
                  "without pad in ceil mode"),
    "v1.5": ("", "torchvision / timm / paddle.vision: stride on the 3x3, max pool pad 1"),
    "v1-pad1": ("_v1_pad1", "Keras, MXNet Gluon v1, ONNX zoo v1: stride on the first 1x1, "
                            "max pool pad 1"),
    "v2": ("_v2", "pre-activation (MXNet, ONNX zoo v2): batch norm + ReLU before each conv"),
}

_BLOCK = re.compile(r"^res(\d+)_(\d+)_")
_BRANCH = re.compile(r"^res(\d+)_(\d+)_(branch1|branch2a|branch2b|branch2c|preact)_(conv|bn)$")


class Branch(NamedTuple):
    """`res3_1_branch2b_conv` read apart: stage 3, block 1, branch '2b', kind 'conv'."""

    stage: int
    block: int
    branch: str
    kind: str


def block_of(name: str) -> tuple[int, int] | None:
    """(stage, block) of a `resK_J_...` layer, else None (stem and head layers)."""
    m = _BLOCK.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def parse_branch(name: str) -> Branch | None:
    """The parts of a `resK_J_branchX_{conv,bn}` name (or a pre-activation unit's
    `resK_J_preact_bn`: branch 'preact'), else None."""
    m = _BRANCH.match(name)
    return (Branch(int(m.group(1)), int(m.group(2)), m.group(3).replace("branch", ""),
                   m.group(4)) if m else None)


def arch_name(layer_num: int, variant: str) -> str:
    return f"resnet{layer_num}{VARIANTS[variant][0]}"


class ResNetFamily(Family):
    name = "resnet"

    def title(self, spec):
        return f"ResNet-{spec.layer_num} " + (
            "(v1 model zoo)" if spec.variant == "v1" else f"({spec.variant})")

    def short(self, spec):
        return f"ResNet-{spec.layer_num}"

    def label(self, spec):
        return f"ResNet-{spec.layer_num}" + ("" if spec.variant == "v1" else f" ({spec.variant})")

    def stem(self, spec):
        return f"resnet_{spec.layer_num}"

    def default_features(self, spec):
        """The last block's final conv and the batch norm (or addition) after it: v1's
        default extract layers at every depth; in v2, whose blocks end in a conv, that conv
        and the block's sum."""
        last = [n for n in spec if n.op == "addto"][-1]  # addto(shortcut, branch)
        branch = spec[last.inputs[1]]
        if branch.op == "conv":
            return [branch.name, last.name]
        return [branch.inputs[0], branch.name]

    def cluster_of(self, name):
        b = block_of(name)
        return f"res{b[0]}" if b else None

    def cluster_label(self, spec, stage, names):
        last = spec[names[-1]]
        return f"{stage}: {block_of(last.name)[1]} blocks, " + "x".join(map(str, last.shape))

    def cluster_top(self, spec, stage, names):
        """The first block's main branch (a projection shortcut sits beside it)."""
        top = f"{stage}_1_branch2a_conv"
        return top if top in names else names[0]

    def folds(self, spec, keep):
        """Blocks 1 (projection) and 2 (an identity block's pattern) of each stage stay in
        full; every run of the remaining identity blocks becomes one node, split around a
        block holding a kept layer."""
        kept = {block_of(name) for name in keep if block_of(name)}
        last_block: dict = {}
        for n in spec:
            b = block_of(n.name)
            if b:
                last_block[b[0]] = max(last_block.get(b[0], 0), b[1])
        by_block = {}
        for stage, count in last_block.items():
            run: list[int] = []
            for j in list(range(3, count + 1)) + [None]:  # None flushes the run
                if j is not None and (stage, j) not in kept:
                    run.append(j)
                    continue
                if run:
                    first, last = f"res{stage}_{run[0]}", f"res{stage}_{run[-1]}"
                    n = len(run)
                    fold = Fold(first if first == last else f"{first} … {last}",
                                f"{n} identity block{'s' * (n > 1)}", f"{last}_addto")
                    by_block.update({(stage, b): fold for b in run})
                run = []
        return {n.name: by_block[block_of(n.name)] for n in spec
                if block_of(n.name) in by_block}


FAMILY = ResNetFamily()


def _register(layer_num: int, variant: str) -> None:
    name = arch_name(layer_num, variant)
    ARCHS.register(name)(Arch(name, FAMILY, lambda: (_build_v2 if variant == "v2" else _build)(
                                  layer_num, variant),
                              f"{variant}: {VARIANTS[variant][1]}",
                              (layer_num, variant)))


for _variant in VARIANTS:
    for _depth in DEPTHS:
        _register(_depth, _variant)


def variants() -> list[str]:
    return list(VARIANTS)


def depths(variant: str = "v1") -> tuple:
    return tuple(DEPTHS)


def build(layer_num: int = 50, variant: str = "v1") -> Spec:
    """The Spec of `variant` at `layer_num` layers, or a one-line error naming the choices."""
    if variant not in VARIANTS:
        raise ResnetError(f"unsupported variant {variant!r}: choose one of "
                          f"{', '.join(VARIANTS)}")
    try:
        depth = int(layer_num)
        if depth not in DEPTHS:
            raise ValueError
    except (TypeError, ValueError):
        zoo = ", ".join(str(d) for d in DEPTHS if d in ZOO_DEPTHS)
        other = ", ".join(str(d) for d in DEPTHS if d not in ZOO_DEPTHS)
        raise ResnetError(f"unsupported layer_num {layer_num!r}: choose one of {zoo} (the v1 "
                          f"zoo's depths)" + (f" or {other}" if other else "")) from None
    return ARCHS[arch_name(depth, variant)].build()


class _Nodes(Nodes):
    def conv(self, name, src, filters, size, stride, pad):
        channels = self.shape(src)[0]
        return self.add(name, "conv", [src], filters=filters, channels=channels, size=size,
                        stride=stride, pad=pad)

    def bn(self, name, src, act):
        return self.add(name, "bn", [src], act=act)

    def max_pool(self, src, pad, ceil):
        return self.add("pool1", "pool", [src], type="max", size=3, stride=2, pad=pad,
                        ceil=ceil)

    def head(self, src):
        c, h, w = self.shape(src)
        x = self.add("avgpool", "pool", [src], type="avg", size=7, stride=1, pad=0, ceil=False)
        c, h, w = self.shape(x)
        self.add("output", "fc", [x], act="softmax", out=NUM_CLASSES, **{"in": c * h * w})


def _done(nodes, layer_num, variant) -> Spec:
    return Spec(layer_num, tuple(nodes), variant, arch_name(layer_num, variant))


def _build(layer_num: int, variant: str) -> Spec:
    """The post-activation ResNet with `layer_num` layers in `variant` (v1, v1-pad1, v1.5).

    A basic block's two 3x3 convs are branch2a and branch2b, and a projection branch1
    exists only where the shape changes.
    """
    blocks = DEPTHS[layer_num]
    v1 = variant in ("v1", "v1-pad1")  # stride on the first 1x1
    basic = layer_num in BASIC_DEPTHS
    nodes = _Nodes()

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
            x = nodes.add(f"{p}_addto", "addto", [shortcut, b], act="relu")
    nodes.head(x)
    return _done(nodes, layer_num, variant)


def _build_v2(layer_num: int, variant: str = "v2") -> Spec:
    """The pre-activation ResNet as MXNet (Gluon v2, its symbolic zoo) and the ONNX zoo's v2
    define it: a batch norm on the input image, each block's batch norm + ReLU before its
    convolutions (`resK_J_preact_bn`; a projection shortcut reads that pre-activated input),
    stride on the 3x3, additions without a ReLU, a final batch norm + ReLU (`final_bn`)."""
    blocks, basic = DEPTHS[layer_num], layer_num in BASIC_DEPTHS
    nodes = _Nodes()
    x = nodes.add("input", "data", [], (3, INPUT_SIZE, INPUT_SIZE))
    x = nodes.bn("input_bn", x, None)
    x = nodes.bn("conv1_bn", nodes.conv("conv1_conv", x, 64, 7, 2, 3), "relu")
    x = nodes.max_pool(x, 1, False)
    for stage, (count, (mid, out)) in enumerate(zip(blocks, STAGE_WIDTHS), start=2):
        out = mid if basic else out
        for j in range(1, count + 1):
            p = f"res{stage}_{j}"
            stride = 2 if (j == 1 and stage > 2) else 1
            act = nodes.bn(f"{p}_preact_bn", x, "relu")
            shortcut = x
            if stride != 1 or nodes.shape(x)[0] != out:
                shortcut = nodes.conv(f"{p}_branch1_conv", act, out, 1, stride, 0)
            if basic:
                b = nodes.bn(f"{p}_branch2a_bn",
                             nodes.conv(f"{p}_branch2a_conv", act, mid, 3, stride, 1), "relu")
                b = nodes.conv(f"{p}_branch2b_conv", b, out, 3, 1, 1)
            else:
                b = nodes.bn(f"{p}_branch2a_bn",
                             nodes.conv(f"{p}_branch2a_conv", act, mid, 1, 1, 0), "relu")
                b = nodes.bn(f"{p}_branch2b_bn",
                             nodes.conv(f"{p}_branch2b_conv", b, mid, 3, stride, 1), "relu")
                b = nodes.conv(f"{p}_branch2c_conv", b, out, 1, 1, 0)
            x = nodes.add(f"{p}_addto", "addto", [shortcut, b], act=None)
    nodes.head(nodes.bn("final_bn", x, "relu"))
    return _done(nodes, layer_num, "v2")
