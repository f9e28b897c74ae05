"""Keras applications' VGG16 and VGG19 names, for --from=keras (keras.py reads the files).

Keras names a conv unit `block{b}_conv{i}` (ReLU fused into the conv, as in Caffe: its output
is the spec's `conv{b}_{i}`) and the head `fc1`, `fc2` (ReLU fused) and `predictions` (softmax
fused). There is no batch-norm variant. keras.py has already turned each kernel into the
spec's layout: conv kernels (kh, kw, in, out) to (out, in, kh, kw), and fc1's rows from
Keras' (H, W, C) flatten to the spec's (C, H, W); Dense kernels are (in, out), as the spec's
fc weights are.

The weights expect Keras' "caffe" preprocessing: BGR, minus the ImageNet mean pixel, no
scaling, the photo resized straight to 224x224 by `load_img`'s default nearest filter.
"""
from __future__ import annotations

from resnet.importers.base import FAMILY_STYLES, STYLES, Style
from resnet.models.preprocessing import KERAS_CAFFE

#: ImageNet validation top-1 / top-5 (%) of the Keras weights, as keras.io's applications
#: table lists them
PUBLISHED = {"vgg16": (71.3, 90.1), "vgg19": (71.3, 90.0)}
HEAD = {"fc6_fc": "fc1", "fc7_fc": "fc2", "fc8": "predictions"}


class KerasVGG(Style):
    """Keras' layer names for one VGG architecture."""

    def __init__(self, arch: str):
        super().__init__("keras", {}, False, recipe=KERAS_CAFFE)
        top1, top5 = PUBLISHED[arch]
        self.arch = arch
        self.source = {"top1": top1, "top5": top5,
                       "accuracy_published_by": "keras.io (Keras applications)"}

    def describes(self, spec) -> bool:
        return spec.arch == self.arch

    def module(self, node: str, spec) -> str:
        if node.endswith("_conv"):  # conv3_2_conv -> block3_conv2
            block, unit = node[len("conv"):-len("_conv")].split("_")
            return f"block{block}_conv{unit}"
        return HEAD[node]


for _arch in PUBLISHED:
    STYLES[f"keras {_arch}"] = KerasVGG(_arch)
    FAMILY_STYLES.setdefault("keras", []).append(f"keras {_arch}")
