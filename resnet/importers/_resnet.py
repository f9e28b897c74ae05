"""What the ResNet family's naming files (resnet_torch.py, resnet_caffe.py, resnet_keras.py,
resnet_mxnet.py) share: a key naming of the ResNet spec given by its stem, a block function
and the extra layers (v2's input and final batch norms)."""
from __future__ import annotations

from resnet.importers.base import Style
from resnet.models.resnet import parse_branch

#: variants with the same parameters (only strides and pooling differ): a style naming one
#: names them all, and the importer's default or the user's --variant picks
POST_ACTIVATION = ("v1", "v1-pad1", "v1.5")


class ResNetStyle(Style):
    """`block(stage, j, block index, branch, kind)` names a block's conv or bn module."""

    def __init__(self, name, stem, block, bn, fc_out_in, ignore=(), fc="fc", extra=None,
                 variants=POST_ACTIVATION, recipe=None):
        super().__init__(name, bn, fc_out_in, ignore, variants, recipe)
        self._stem, self._block, self.fc = stem, block, fc
        self.extra = extra or {}  # other layers by node name (v2's input_bn, final_bn)

    def describes(self, spec) -> bool:
        return spec.family.name == "resnet" and spec.variant in self.variants

    def module(self, node: str, block_index: dict) -> str:
        if node == "output":
            return self.fc
        if node in self.extra:
            return self.extra[node]
        if node.startswith("conv1_"):
            return self._stem[node[len("conv1_"):]]
        stage, j, branch, kind = parse_branch(node)
        return self._block(stage, j, block_index[f"res{stage}_{j}"], branch, kind)
