"""Caffe's VGG names (`VGG_ILSVRC_16_layers`, `VGG_ILSVRC_19_layers`: `conv1_1` ... `conv5_3`
or `conv5_4`, `fc6`, `fc7`, `fc8`), as three sources carry them:

- the Caffe `.caffemodel` itself (caffe.py reads its [weight, bias] blobs);
- MXNet's symbolic model zoo files converted from it (`vgg16-0000.params`:
  `arg:conv1_1_weight` ... `arg:fc8_weight`; mxnet.py drops the `arg:` prefix). MXNet's
  Caffe converter reversed conv1's input channels, so those files take RGB input, minus the
  RGB mean pixel, no scaling;
- the ONNX zoo's `vgg19-caffe2` (`conv1_1_w_0`, `conv1_1_b_0`, ..., `fc8_w_0`; onnx_zoo.py
  turns `_w_0` / `_b_0` into weight / bias).

Weights are (out, in) everywhere, and fc6 takes pool5 flattened in (C, H, W) order, as the
spec's fc6 does. Caffe's pools round up where the spec's round down; at 224 every pooled
size is even, so they agree.
"""
from __future__ import annotations

from resnet.importers.base import FAMILY_STYLES, STYLES, Style
from resnet.models.preprocessing import DEFAULT_BGR, Recipe

#: the VGG team's preprocessing: BGR, minus the ImageNet mean pixel, no scaling
CAFFE_BGR = Recipe("BGR", 1.0, DEFAULT_BGR)
#: MXNet's caffe-converted zoo files: conv1 turned to RGB by the converter, the same mean
MXNET_RGB = Recipe("RGB", 1.0, tuple(reversed(DEFAULT_BGR)))
#: The zoo does not say how vgg19-caffe2 expects its input (unconfirmed). Its weights came
#: from Caffe's, whose conv1 reads BGR, and nothing in the caffe2 conversion reorders
#: channels, so Caffe's recipe is assumed.
CAFFE2_ASSUMED = CAFFE_BGR


class CaffeVGG(Style):
    """Caffe's layer names for the parameters of one VGG architecture (no batch norm)."""

    def __init__(self, name: str, arch: str, recipe: Recipe, ignore=()):
        super().__init__(name, {}, True, ignore=ignore, recipe=recipe)
        self.arch = arch

    def describes(self, spec) -> bool:
        return spec.arch == self.arch

    def module(self, node: str, spec) -> str:
        if node.endswith("_conv"):  # conv1_1_conv -> conv1_1
            return node[:-len("_conv")]
        return node[:-len("_fc")] if node.endswith("_fc") else node  # fc6_fc -> fc6; fc8


for _arch in ("vgg16", "vgg19"):
    STYLES[f"caffe {_arch}"] = CaffeVGG("caffe", _arch, CAFFE_BGR)
    # MXNet's symbolic nets may carry the softmax's label as an argument: not a weight
    STYLES[f"mxnet caffe-converted {_arch}"] = CaffeVGG(
        "mxnet symbolic (converted from caffe)", _arch, MXNET_RGB, ignore=("prob_label",))
    STYLES[f"caffe2 {_arch}"] = CaffeVGG("caffe2", _arch, CAFFE2_ASSUMED)
    FAMILY_STYLES.setdefault("caffe", []).append(f"caffe {_arch}")
    FAMILY_STYLES.setdefault("mxnet", []).append(f"mxnet caffe-converted {_arch}")
    FAMILY_STYLES.setdefault("onnx", []).append(f"caffe2 {_arch}")
