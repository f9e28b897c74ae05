"""Inception v3's key names in torchvision / timm (`.pth`, `.safetensors`) and paddle.vision
(`.pdparams`) state dicts.

- torchvision and timm: `Conv2d_1a_3x3.conv.weight`, `Conv2d_1a_3x3.bn.running_mean`, ...,
  `Mixed_5b.branch1x1.conv.weight`, ..., `fc.weight` (1000, 2048). The auxiliary classifier
  (`AuxLogits.*`, used only in training) and the `num_batches_tracked` counters are skipped.
  BN eps 1e-3 and pools counting the padding: the `inception_v3` network. torchvision's
  published weights expect its `transform_input`, which maps ImageNet-normalised input back
  to [-1, 1]: the recipe records the result, (x / 255 - 0.5) / 0.5 after a 342 resize and a
  299 centre crop.
- paddle.vision: `inception_stem.conv_1a_3x3.0.weight` (conv), `....1.weight/_mean/...` (BN),
  `inception_block_list.{0..10}.<branch>.{0,1}` with torchvision's `branch_pool` conv named
  `branch_pool_conv`, `fc.weight` (2048, 1000). BN eps 1e-5: the `inception_v3_paddle`
  network. Its eval-time dropout (`downscale_in_infer`, p 0.2) multiplies the pooled features
  by 0.8 before fc: folded into the fc weights here, so `fc` and `output` are what
  paddle.vision computes and `avgpool` is its pooled features. Its preprocessing is not
  documented; ImageNet mean/std at 299 is assumed.
- pytorch-fid (`pt_inception-2015-12-05-6726825d.pth`, TensorFlow's 2015 graph ported):
  torchvision's names and layout with a 1008-way `fc`: the `inception_v3_fid` network. Its
  recipe is pytorch-fid's input: RGB straight to 299x299 (bilinear, as its F.interpolate),
  scaled to [-1, 1].
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from resnet.importers.base import _PADDLE_BN, _TORCH_BN, Style, add_styles
from resnet.models.inception import BLOCKS, STEM
from resnet.models.preprocessing import IMAGENET_RGB, Recipe

TORCHVISION_RECIPE = replace(IMAGENET_RGB, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
                             resize_short_side=342, crop=299)
PADDLE_RECIPE = replace(IMAGENET_RGB, resize_short_side=342, crop=299)
FID_RECIPE = Recipe("RGB", 1.0 / 127.5, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), None, 299, "bilinear")
#: paddle.vision's Dropout(p=0.2, mode="downscale_in_infer") at eval: x * (1 - p)
PADDLE_DROPOUT_SCALE = 0.8


def _unit(name: str) -> tuple[str, str, str] | None:
    """(block or stem module, branch, tap) of a conv unit's `..._conv` / `..._bn` node."""
    for tap in ("conv", "bn"):
        if name.endswith("_" + tap):
            unit = name[:-len(tap) - 1]
            if unit in STEM:
                return STEM[unit], "", tap
            block, _, branch = unit.partition("_")
            if block in BLOCKS:
                return block, branch, tap
    return None


class TorchInception(Style):
    def __init__(self, name="torchvision", arch="inception_v3", recipe=TORCHVISION_RECIPE):
        super().__init__(name, _TORCH_BN, True, ignore=(".num_batches_tracked",), recipe=recipe)
        self.arch = arch

    def describes(self, spec) -> bool:
        return spec.arch == self.arch

    def ignored(self, key: str) -> bool:
        return key.startswith("AuxLogits.") or super().ignored(key)

    def module(self, node: str, index) -> str:
        if node == "fc":
            return "fc"
        where, branch, tap = _unit(node)
        return f"{where}.{branch}.{tap}" if branch else f"{where}.{tap}"


class PaddleInception(Style):
    def __init__(self):
        super().__init__("paddle.vision", _PADDLE_BN, False, recipe=PADDLE_RECIPE)

    def describes(self, spec) -> bool:
        return spec.arch == "inception_v3_paddle"

    def module(self, node: str, index) -> str:
        if node == "fc":
            return "fc"
        where, branch, tap = _unit(node)
        layer = "0" if tap == "conv" else "1"
        if not branch:  # Conv2d_1a_3x3 -> inception_stem.conv_1a_3x3
            return f"inception_stem.conv_{where.split('_', 1)[1]}.{layer}"
        i = list(BLOCKS).index(where)
        branch = "branch_pool_conv" if branch == "branch_pool" else branch
        return f"inception_block_list.{i}.{branch}.{layer}"

    def adjust(self, values: dict) -> dict:
        values["_fc.w0"] = values["_fc.w0"] * np.float32(PADDLE_DROPOUT_SCALE)
        return values


add_styles({"torchvision inception_v3": TorchInception(),
            "pytorch-fid inception_v3": TorchInception("pytorch-fid", "inception_v3_fid",
                                                       FID_RECIPE)},
           "torchvision", "safetensors")
add_styles({"paddle.vision inception_v3": PaddleInception()}, "paddle")
