"""Keras applications' InceptionV3 names, for --from=keras (keras.py reads the files).

Keras leaves InceptionV3's conv and batch-norm layers unnamed, so they carry its automatic
names, `conv2d_N` and `batch_normalization_N`, numbered in creation order: 1 to 94 in the
published file, from wherever the process's count stood in a file Keras 3 writes; keras.py
renumbers them from 1. Keras creates them in the order the spec lists its conv units (per
block: torchvision's branch order), so the N-th conv node is `conv2d_N`. The Dense head is
`predictions`. The batch norms have no gamma (`scale=False`; keras.py gives them ones) and
eps 1e-3, which keras.py folds to 1e-5 and the style refolds to the spec's 1e-3; the block
average pools leave the padding out: the `inception_v3_keras` network.

The weights expect Keras' "tf" preprocessing: RGB scaled to [-1, 1], the photo resized
straight to 299x299 by `load_img`'s default nearest filter.
"""
from __future__ import annotations

import functools

from resnet.importers._keras_app import KerasApplication
from resnet.importers.base import add_styles

#: ImageNet validation top-1 / top-5 (%) of Keras' InceptionV3 weights (keras.io's table)
PUBLISHED = (77.9, 93.7)


@functools.cache
def _numbers(spec) -> dict[str, int]:
    """Conv node -> its Keras number (1-based creation order)."""
    return {n.name: k for k, n in enumerate((n for n in spec if n.op == "conv"), 1)}


class KerasInception(KerasApplication):
    def layer(self, node: str, spec) -> str:
        if node.endswith("_bn"):
            return f"batch_normalization_{_numbers(spec)[node[:-len('bn')] + 'conv']}"
        return f"conv2d_{_numbers(spec)[node]}"


add_styles({"keras inception_v3": KerasInception("inception_v3_keras", PUBLISHED)}, "keras")
