"""The pre-activation ResNet family (v2), as MXNet (Gluon v2, its symbolic zoo) and the ONNX
zoo's v2 files define it. Registered in MODELS as `v2`; depths and widths as resnet.py's.
"""
from __future__ import annotations

from resnet.models import MODELS
from resnet.models.graph import INPUT_SIZE, Spec
from resnet.models.resnet import BASIC_DEPTHS, DEPTHS, STAGE_WIDTHS, Nodes


@MODELS.register("v2")
def resnet_v2(layer_num: int) -> Spec:
    """The pre-activation ResNet as MXNet (Gluon v2, its symbolic zoo) and the ONNX zoo's v2
    define it: a batch norm on the input image, each block's batch norm + ReLU before its
    convolutions (`resK_J_preact_bn`; a projection shortcut reads that pre-activated input),
    stride on the 3x3, additions without a ReLU, a final batch norm + ReLU (`final_bn`)."""
    return _build_v2(layer_num)


resnet_v2.depths = tuple(DEPTHS)


def _build_v2(layer_num: int) -> Spec:
    blocks, basic = DEPTHS[layer_num], layer_num in BASIC_DEPTHS
    nodes = Nodes()
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
            x = nodes.add(f"{p}_addto", "addto", [shortcut, b], nodes.shape(b), act=None)
    nodes.head(nodes.bn("final_bn", x, "relu"))
    return Spec(layer_num, tuple(nodes), "v2")
