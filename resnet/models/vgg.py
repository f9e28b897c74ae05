"""The VGG family: VGG-16 and VGG-19 (configurations D and E of Simonyan and Zisserman), with
and without batch norm, as Caffe, Keras, torchvision, timm, paddle.vision, MXNet and the ONNX
zoo all define them: 3x3 convs (stride 1, pad 1, with bias), 2x2 max pools, fc6/fc7 (4096)
and fc8 (1000).

Names follow Caffe's prototxt, which every source maps onto: `conv{b}_{i}` is the output of
a conv unit after its ReLU (what Caffe and Keras expose), `pool1`..`pool5`, `fc6` and `fc7`
after their ReLU, `fc8` the logits, `output` the softmax. The taps before the ReLU are
`conv{b}_{i}_conv` (and `conv{b}_{i}_bn` with batch norm), `fc6_fc` and `fc7_fc`; these
nodes hold the parameters (`_conv1_1_conv.w0`, `_fc6_fc.w0`, ...).
"""
from __future__ import annotations

from resnet.models.archs import ARCHS
from resnet.models.family import Arch, Family
from resnet.models.graph import Nodes, Spec

#: convs per block for each depth
BLOCKS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)
INPUT_SIZE, NUM_CLASSES, FC_WIDTH = 224, 1000, 4096


def block_of(name: str) -> int | None:
    """The block (1..5) of `conv{b}_{i}...` and `pool{b}`, else None."""
    for prefix in ("conv", "pool"):
        if name.startswith(prefix) and name[len(prefix):len(prefix) + 1].isdigit():
            return int(name[len(prefix)])
    return None


class VGGFamily(Family):
    name = "vgg"

    def title(self, spec):
        return f"VGG-{spec.layer_num}" + (" with batch norm" if spec.arch.endswith("_bn")
                                          else "")

    def default_features(self, spec):
        return ["fc7"]

    def cluster_of(self, name):
        b = block_of(name)
        return f"block{b}" if b else None

    def cluster_label(self, spec, block, names):
        convs = sum(1 for n in names if spec[n].op == "conv")
        last = spec[names[-1]]
        return f"{block}: {convs} convs, " + "x".join(map(str, last.shape))


FAMILY = VGGFamily()


def _build(depth: int, batch_norm: bool) -> Spec:
    name = f"vgg{depth}" + ("_bn" if batch_norm else "")
    nodes = Nodes()
    x = nodes.add("input", "data", [], (3, INPUT_SIZE, INPUT_SIZE))
    for b, (count, width) in enumerate(zip(BLOCKS[depth], WIDTHS), start=1):
        for i in range(1, count + 1):
            unit = f"conv{b}_{i}"
            x = nodes.add(f"{unit}_conv", "conv", [x], filters=width,
                          channels=nodes.shape(x)[0], size=3, stride=1, pad=1, bias=True)
            if batch_norm:
                x = nodes.add(f"{unit}_bn", "bn", [x], act=None)
            x = nodes.add(unit, "relu", [x])
        x = nodes.add(f"pool{b}", "pool", [x], type="max", size=2, stride=2, pad=0, ceil=False)
    for fc in ("fc6", "fc7"):
        c, h, w = (nodes.shape(x) + (1, 1))[:3]
        x = nodes.add(f"{fc}_fc", "fc", [x], act=None, out=FC_WIDTH, **{"in": c * h * w})
        x = nodes.add(fc, "relu", [x])
    x = nodes.add("fc8", "fc", [x], act=None, out=NUM_CLASSES, **{"in": FC_WIDTH})
    nodes.add("output", "softmax", [x])
    return Spec(depth, tuple(nodes), name, name)


for _depth in BLOCKS:
    for _bn in (False, True):
        _name = f"vgg{_depth}" + ("_bn" if _bn else "")
        ARCHS.register(_name)(Arch(
            _name, FAMILY, lambda d=_depth, b=_bn: _build(d, b),
            f"VGG-{_depth}" + (" with batch norm after every conv" if _bn else "")
            + ": 3x3 convs, 2x2 max pools, fc6/fc7 4096, fc8 1000"))
