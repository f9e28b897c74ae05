"""What Keras applications' InceptionV3 and Xception styles share: Keras' batch-norm leaves,
the "tf" recipe at 299, keras.py's eps folded to 1e-5 (refolded to the spec's 1e-3), the
Dense head `predictions` and the accuracy keras.io publishes; each names its own layers.
"""
from __future__ import annotations

from resnet.importers.base import Style
from resnet.importers.keras import BN_NAMES
from resnet.models.ops import DEFAULT_EPS
from resnet.models.preprocessing import KERAS_TF_299


class KerasApplication(Style):
    """Keras' names for the one architecture `arch`, published at (top-1, top-5) %."""

    def __init__(self, arch: str, published: tuple[float, float]):
        super().__init__("keras", BN_NAMES, False, recipe=KERAS_TF_299,
                         variance_eps=DEFAULT_EPS)
        self.arch = arch
        self.source = {"top1": published[0], "top5": published[1],
                       "accuracy_published_by": "keras.io (Keras applications)"}

    def describes(self, spec) -> bool:
        return spec.arch == self.arch

    def module(self, node: str, spec) -> str:
        return "predictions" if node == "fc" else self.layer(node, spec)

    def layer(self, node: str, spec) -> str:
        """The Keras layer of any node but the head."""
        raise NotImplementedError
