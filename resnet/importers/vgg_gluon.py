"""MXNet Gluon's VGG names (model_zoo/vision/vgg.py), for Gluon's own `.params` files and
the ONNX zoo's VGG files (`vgg16-7`, `vgg16-bn-7`, `vgg19-7`, `vgg19-bn-7`, `vgg16-12`),
which were exported from Gluon.

Gluon's VGG is one `features` Sequential: per conv unit a Conv2D (with bias), a BatchNorm in
the `_bn` variants, an Activation; a MaxPool2D after each block; then fc6 and fc7 as Dense
layers with their ReLU inside, each followed by a Dropout. fc8 is the separate `output`
Dense. Dense weights are (out, in) and take their input flattened in (C, H, W) order, as the
spec's fc6 does. Batch norm eps is 1e-5, the spec's.

Files name the parameters either by creation order under the instance prefix
(`vgg0_conv3_weight`, `vgg0_batchnorm3_gamma`, `vgg0_dense0_weight`; the readers drop the
prefix, as Gluon's legacy files do) or by attribute path (`save_parameters`:
`features.7.weight`, `features.8.running_var`, `features.31.weight`, `output.weight`). The
ONNX zoo's initializers are the prefixed names.

Each architecture gets its own style so that model.json records the accuracy its publisher
states for it.
"""
from __future__ import annotations

import functools

from resnet.importers._gluon import BN_NAMES
from resnet.importers.base import FAMILY_STYLES, STYLES, Style
from resnet.models import build_arch
from resnet.models.preprocessing import IMAGENET_RGB

ARCHS = ("vgg16", "vgg16_bn", "vgg19", "vgg19_bn")

#: ImageNet validation top-1 / top-5 (%) as each zoo publishes it
GLUON_ZOO = {"vgg16": (73.23, 91.32), "vgg16_bn": (73.10, 91.76), "vgg19": (74.11, 91.35),
             "vgg19_bn": (74.33, 91.85)}
ONNX_ZOO = {"vgg16": (72.62, 91.14), "vgg16_bn": (72.71, 91.21), "vgg19": (73.72, 91.58),
            "vgg19_bn": (73.83, 91.79)}
ONNX_FILES = {"vgg16": "vgg16-7.onnx", "vgg16_bn": "vgg16-bn-7.onnx", "vgg19": "vgg19-7.onnx",
              "vgg19_bn": "vgg19-bn-7.onnx"}


@functools.cache
def modules(arch: str, structural: bool) -> dict[str, str]:
    """Node name -> Gluon module name for every node with parameters of `arch`."""
    out, index, count = {}, 0, {"conv": 0, "bn": 0, "fc": 0}
    for node in build_arch(arch):
        if node.op in ("conv", "bn"):
            k = count[node.op]
            count[node.op] += 1
            out[node.name] = (f"features.{index}" if structural
                              else f"{'conv' if node.op == 'conv' else 'batchnorm'}{k}")
            index += 1
        elif node.op == "fc":
            k = count["fc"]
            count["fc"] += 1
            last = node.name == "fc8"
            out[node.name] = ("output" if last else f"features.{index}") if structural \
                else f"dense{k}"
            index += 2  # the Dense (its ReLU inside) and the Dropout after it
        elif node.op == "pool" or (node.op == "relu" and not node.name.startswith("fc")):
            index += 1  # Activation and MaxPool2D take an index, hold nothing
    return out


class GluonVGG(Style):
    """Gluon's names of one VGG architecture."""

    def __init__(self, name: str, arch: str, structural: bool, source: dict):
        super().__init__(name, BN_NAMES, True, recipe=IMAGENET_RGB)
        self.arch, self.structural, self.source = arch, structural, source

    def describes(self, spec) -> bool:
        return spec.arch == self.arch

    def module(self, node: str, spec) -> str:
        return modules(self.arch, self.structural)[node]


def _accuracy(table: dict, arch: str, published: str) -> dict:
    top1, top5 = table[arch]
    return {"top1": top1, "top5": top5, "accuracy_published_by": published}


for _arch in ARCHS:
    _gluon = _accuracy(GLUON_ZOO, _arch, "MXNet Gluon model zoo")
    _onnx = _accuracy(ONNX_ZOO, _arch, f"ONNX model zoo, {ONNX_FILES[_arch]}"
                      + ("; vgg16-12.onnx lists 72.38 / 91.00" if _arch == "vgg16" else ""))
    STYLES[f"gluon {_arch}"] = GluonVGG("gluon", _arch, False, _gluon)
    STYLES[f"gluon structural {_arch}"] = GluonVGG("gluon structural", _arch, True, _gluon)
    STYLES[f"onnx zoo {_arch}"] = GluonVGG("gluon", _arch, False, _onnx)
    FAMILY_STYLES.setdefault("mxnet", []).extend([f"gluon {_arch}",
                                                  f"gluon structural {_arch}"])
    FAMILY_STYLES.setdefault("onnx", []).append(f"onnx zoo {_arch}")
