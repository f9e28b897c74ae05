"""The torch-family VGG names: torchvision's `vgg16/vgg16_bn/vgg19/vgg19_bn`, timm's models of
the same names, and paddle.vision's `vgg16/vgg19(batch_norm=...)`.

All three build `features` as torchvision's `make_layers` does: one Sequential where every
conv unit takes an index for its Conv2d, one for its BatchNorm in the `_bn` variants and one
for its ReLU, and every block ends with a MaxPool that takes an index too. The indices are
therefore read off the spec's own nodes here, in order, rather than kept as tables.

The heads differ:
- torchvision and paddle.vision: `classifier` = Linear, ReLU, Dropout, Linear, ReLU,
  Dropout, Linear, so fc6, fc7, fc8 are `classifier.0`, `.3`, `.6`. torch stores a Linear's
  weight (out, in), Paddle (in, out) as the spec does. Both flatten pool5 in (C, H, W) order
  (after an adaptive 7x7 average pool, the identity at 224).
- timm: `pre_logits.fc1` is fc6 as a 7x7 conv over pool5 (4096, 512, 7, 7): flattening its
  weight's (C, H, W) axes gives exactly the Linear's rows; `pre_logits.fc2` is fc7 as a 1x1
  conv (4096, 4096, 1, 1); `head.fc` is fc8, a Linear (1000, 4096) after a global average
  pool of a 1x1 map. At 224 it computes what torchvision's network computes.

Batch norm: torch's `running_mean/running_var` (and `num_batches_tracked`, a counter, not a
weight) or Paddle's `_mean/_variance`; eps is 1e-5 in all three, the spec's.

Each architecture gets its own style so that model.json records the accuracy its publisher
states for it. All three sources take RGB /255 input normalised by the ImageNet mean and std.
"""
from __future__ import annotations

import functools

from resnet.importers.base import _PADDLE_BN, _TORCH_BN, FAMILY_STYLES, STYLES, Style
from resnet.models import build_arch
from resnet.models.preprocessing import IMAGENET_RGB

ARCHS = ("vgg16", "vgg16_bn", "vgg19", "vgg19_bn")

#: ImageNet validation top-1 / top-5 (%) as each publisher lists it: torchvision's weight
#: tables, timm's results for its `tv_in1k` weights (torchvision's, re-evaluated).
#: paddle.vision publishes none for its VGG weights.
TORCHVISION = {"vgg16": (71.592, 90.382), "vgg16_bn": (73.360, 91.516),
               "vgg19": (72.376, 90.876), "vgg19_bn": (74.218, 91.842)}
TIMM = {"vgg16": (71.594, 90.398), "vgg16_bn": (73.354, 91.490),
        "vgg19": (72.400, 90.878), "vgg19_bn": (74.230, 91.848)}

#: timm's head: fc6 and fc7 are convs, fc8 the classifier head's Linear
TIMM_HEAD = {"fc6_fc": "pre_logits.fc1", "fc7_fc": "pre_logits.fc2", "fc8": "head.fc"}


@functools.cache
def modules(arch: str) -> dict[str, str]:
    """Node name -> `features.N` / `classifier.N` for every node of `arch` with parameters,
    counting the Sequential indices as `make_layers` and the classifier create them."""
    out, seq, index = {}, "features", 0
    for node in build_arch(arch):
        if node.op == "fc" and seq == "features":
            seq, index = "classifier", 0  # the head is its own Sequential
        if node.op in ("conv", "bn", "fc"):
            out[node.name] = f"{seq}.{index}"
        if node.op in ("conv", "bn", "fc", "pool"):
            index += 1
        elif node.op == "relu":
            index += 1 if seq == "features" else 2  # the classifier's Dropout after its ReLU
    return out


class TorchVGG(Style):
    """One source's names for one VGG architecture."""

    def __init__(self, name: str, arch: str, bn: dict, fc_out_in: bool, source: dict,
                 head: dict | None = None):
        super().__init__(name, bn, fc_out_in, ignore=(".num_batches_tracked",),
                         recipe=IMAGENET_RGB)
        self.arch, self.source, self.head = arch, source, head or {}

    def describes(self, spec) -> bool:
        return spec.arch == self.arch

    def module(self, node: str, spec) -> str:
        return self.head.get(node) or modules(self.arch)[node]

    def foreign_shape(self, node, suffix: str, shape: tuple) -> tuple:
        """timm's fc6 and fc7 weights are conv kernels: (out, C, H, W) over pool5's shape
        for fc6, (out, in, 1, 1) for fc7."""
        if not (self.head and suffix == "w0" and node.name in ("fc6_fc", "fc7_fc")):
            return shape
        spec = build_arch(self.arch)
        c, h, w = (spec[node.inputs[0]].shape + (1, 1))[:3]
        return (shape[0], c, h, w)


def _accuracy(table: dict, arch: str, published: str) -> dict:
    top1, top5 = table[arch]
    return {"top1": top1, "top5": top5, "accuracy_published_by": published}


for _arch in ARCHS:
    STYLES[f"torchvision {_arch}"] = TorchVGG(
        "torchvision", _arch, _TORCH_BN, True, _accuracy(TORCHVISION, _arch, "torchvision"))
    STYLES[f"timm {_arch}"] = TorchVGG(
        "timm", _arch, _TORCH_BN, True, _accuracy(TIMM, _arch, f"timm, {_arch}.tv_in1k"),
        head=TIMM_HEAD)
    STYLES[f"paddle.vision {_arch}"] = TorchVGG("paddle.vision", _arch, _PADDLE_BN, False, {})
    for _fmt, _names in (("torchvision", ("torchvision", "timm")),
                         ("safetensors", ("torchvision", "timm", "paddle.vision")),
                         ("paddle", ("paddle.vision",))):
        FAMILY_STYLES.setdefault(_fmt, []).extend(f"{n} {_arch}" for n in _names)
