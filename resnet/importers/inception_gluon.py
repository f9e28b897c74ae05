"""MXNet Gluon's Inception v3 names (model_zoo/vision/inception.py), in `.params` files saved
by `save_parameters` (the zoo's `inceptionv3-ed47ec45.params`): attribute paths.

Gluon's Inception3 is one `features` Sequential: the stem convs at 0, 1, 2, 4, 5 (max pools
at 3 and 6), the eleven blocks at 7 .. 17, then an 8x8 average pool and a dropout; `output`
is the Dense (out, in). A block is a HybridConcatenate of branches, each a Sequential of
conv units, after a pool where the branch has one (so the pool branch's conv is its child 1).
The E blocks nest: branch 1 is [1x1 unit, [1x3 unit, 3x1 unit]], branch 2 is [[1x1, 3x3
units], [1x3 unit, 3x1 unit]]. A conv unit is [Conv2D, BatchNorm, Activation]: `.0.weight`,
`.1.gamma` / `.beta` / `.running_mean` / `.running_var`. BN eps 1e-3 and average pools
counting the padding: the `inception_v3` network. Its recipe is assumed to be torchvision's
[-1, 1] (MXNet states the weights were converted from torchvision's, and Gluon's network has
no `transform_input` to undo it); this is unchecked against the real file.
"""
from __future__ import annotations

from resnet.importers._gluon import BN_NAMES
from resnet.importers.base import Style, add_styles
from resnet.importers.inception_torch import TORCHVISION_RECIPE
from resnet.models.inception import BLOCKS

STEM = {"conv2d_1a": 0, "conv2d_2a": 1, "conv2d_2b": 2, "conv2d_3b": 4, "conv2d_4a": 5}
FIRST_BLOCK = 7
#: block kind -> torchvision branch unit -> its path inside the block
PATHS = {
    "A": {"branch1x1": "0.0", "branch5x5_1": "1.0", "branch5x5_2": "1.1",
          "branch3x3dbl_1": "2.0", "branch3x3dbl_2": "2.1", "branch3x3dbl_3": "2.2",
          "branch_pool": "3.1"},
    "B": {"branch3x3": "0.0", "branch3x3dbl_1": "1.0", "branch3x3dbl_2": "1.1",
          "branch3x3dbl_3": "1.2"},
    "C": {"branch1x1": "0.0", "branch7x7_1": "1.0", "branch7x7_2": "1.1", "branch7x7_3": "1.2",
          **{f"branch7x7dbl_{j}": f"2.{j - 1}" for j in range(1, 6)}, "branch_pool": "3.1"},
    "D": {"branch3x3_1": "0.0", "branch3x3_2": "0.1",
          **{f"branch7x7x3_{j}": f"1.{j - 1}" for j in range(1, 5)}},
    "E": {"branch1x1": "0.0", "branch3x3_1": "1.0.0", "branch3x3_2a": "1.1.0.0",
          "branch3x3_2b": "1.1.1.0", "branch3x3dbl_1": "2.0.0", "branch3x3dbl_2": "2.0.1",
          "branch3x3dbl_3a": "2.1.0.0", "branch3x3dbl_3b": "2.1.1.0", "branch_pool": "3.1"},
}
KINDS = "AAABCCCCDEE"  # mixed0 .. mixed10
#: ImageNet validation top-1 / top-5 (%) as the Gluon model zoo publishes them
PUBLISHED = (77.55, 93.64)


class GluonInception(Style):
    def __init__(self):
        super().__init__("gluon structural", BN_NAMES, True, recipe=TORCHVISION_RECIPE)
        self.source = {"top1": PUBLISHED[0], "top5": PUBLISHED[1],
                       "accuracy_published_by": "MXNet Gluon model zoo"}

    def describes(self, spec) -> bool:
        return spec.arch == "inception_v3"

    def module(self, node: str, spec) -> str:
        if node == "fc":
            return "output"
        unit, _, tap = node.rpartition("_")
        layer = "0" if tap == "conv" else "1"
        if unit in STEM:
            return f"features.{STEM[unit]}.{layer}"
        block, _, branch = unit.partition("_")
        i = list(BLOCKS).index(block)
        return f"features.{FIRST_BLOCK + i}.{PATHS[KINDS[i]][branch]}.{layer}"


add_styles({"gluon structural inception_v3": GluonInception()}, "mxnet")
