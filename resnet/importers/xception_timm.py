"""timm's `legacy_xception` names (`.pth`, `.safetensors`), for the `legacy_xception`
network: Cadene's PyTorch port of the Keras weights, which timm keeps.

Keras' blocks 2 .. 13 are timm's `block1` .. `block12`; a block's residual conv and BN are
`skip` / `skipbn`; its separable convs and BNs sit in `rep` between the ReLUs: `rep.0` (conv)
and `rep.1` (BN) for the first of block 1, which starts without a ReLU, `rep.1` / `rep.2`
for the first of the others, three places on for each next one. A separable conv is `conv1`
(depthwise) and `pointwise`. The stem is `conv1`/`bn1`, `conv2`/`bn2`; block 14's convs are
`conv3`/`bn3` and `conv4`/`bn4`; the classifier `fc` is (out, in).

timm pads the stride-2 max pools by one on every side and keeps PyTorch's BN eps 1e-5, so
this is not Keras' network: at 74x74 its block-3 pool reads a different window. Its recipe
is timm's: RGB, mean = std = 0.5, short side 333 (crop_pct 0.8975), centre crop 299, bicubic.
"""
from __future__ import annotations

from dataclasses import replace

from resnet.importers.base import _TORCH_BN, Style, add_styles
from resnet.models.preprocessing import IMAGENET_RGB

TIMM_RECIPE = replace(IMAGENET_RGB, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                      resize_short_side=333, crop=299, interpolation="bicubic")
#: the layers outside timm's blocks; block 14's separable convs hold `conv1` (depthwise) and
#: `pointwise` as the blocks' do
OUTSIDE = {"block1_conv1": "conv1", "block1_conv1_bn": "bn1", "block1_conv2": "conv2",
           "block1_conv2_bn": "bn2", "block14_sepconv1_bn": "bn3", "block14_sepconv2_bn": "bn4",
           "fc": "fc"}
SEPARABLE = {"block14_sepconv1": "conv3", "block14_sepconv2": "conv4"}


class TimmXception(Style):
    def __init__(self):
        super().__init__("timm legacy_xception", _TORCH_BN, True,
                         ignore=(".num_batches_tracked",), recipe=TIMM_RECIPE)
        self.source = {"top1": 79.058, "top5": 94.396,
                       "accuracy_published_by": "timm (results-imagenet.csv)"}

    def describes(self, spec) -> bool:
        return spec.arch == "legacy_xception"

    def module(self, node: str, spec) -> str:
        if node in OUTSIDE:
            return OUTSIDE[node]
        depthwise = node.endswith("_depthwise")
        unit = node[:-len("_depthwise")] if depthwise else node
        half = "conv1" if depthwise else "pointwise"
        if unit in SEPARABLE:
            return f"{SEPARABLE[unit]}.{half}"
        block, _, rest = unit.partition("_")
        k = int(block[len("block"):])
        where = f"block{k - 1}"
        if rest.startswith("residual"):
            return f"{where}.skipbn" if rest.endswith("_bn") else f"{where}.skip"
        i = int(rest[len("sepconv")])
        sep = 3 * (i - 1) + (0 if k == 2 else 1)
        if rest.endswith("_bn"):
            return f"{where}.rep.{sep + 1}"
        return f"{where}.rep.{sep}.{half}"


add_styles({"timm legacy_xception": TimmXception()}, "torchvision", "safetensors")
