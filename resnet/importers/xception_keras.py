"""Keras applications' Xception names, for --from=keras (keras.py reads the files).

Keras names every layer of Xception but the four residual 1x1 convs and their batch norms
(blocks 2, 3, 4 and 13): those carry automatic names, `conv2d_N` / `batch_normalization_N`,
which keras.py renumbers from 1 in creation order, so the residual of block 2 is
`conv2d_1` and that of block 13 `conv2d_4`. The spec's names are otherwise Keras' own; a
separable conv's depthwise and pointwise halves are the two kernels of Keras' one
SeparableConv2D layer. Batch norms have gamma and eps 1e-3 (folded to 1e-5 by keras.py,
refolded to the spec's 1e-3 here); no conv has a bias; the max pools are TF "same": the
`xception` network.

The weights expect Keras' "tf" preprocessing: RGB scaled to [-1, 1], the photo resized
straight to 299x299 by `load_img`'s default nearest filter.
"""
from __future__ import annotations

from resnet.importers._keras_app import KerasApplication
from resnet.importers.base import add_styles
from resnet.models.xception import ENTRY

#: ImageNet validation top-1 / top-5 (%) of Keras' Xception weights (keras.io's table)
PUBLISHED = (79.0, 94.5)
#: the blocks with a residual conv, in Keras' creation order
RESIDUAL = [f"block{k}" for k in (*ENTRY, 13)]


class KerasXception(KerasApplication):
    def layer(self, node: str, spec) -> str:
        block, _, rest = node.partition("_")
        if rest.startswith("residual"):
            k = RESIDUAL.index(block) + 1
            return f"batch_normalization_{k}" if rest.endswith("_bn") else f"conv2d_{k}"
        if node.endswith("_depthwise"):
            return node[:-len("_depthwise")] + ".depthwise"
        if "sepconv" in node and not node.endswith("_bn"):
            return node + ".pointwise"
        return node


add_styles({"keras xception": KerasXception("xception", PUBLISHED)}, "keras")
