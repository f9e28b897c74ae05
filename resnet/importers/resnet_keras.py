"""ResNet's key names in Keras applications' files: conv{s}_block{j}_{0..3}_{conv,bn}
(ResNet50/101/152), or the first ResNet50 file's Caffe names (conv1, res2a_branch2a, ...)."""
from resnet.importers._resnet import ResNetStyle
from resnet.importers.base import add_styles
from resnet.importers.keras import BN_NAMES as _BN_NAMES
from resnet.importers.resnet_caffe import caffe_block


_BRANCH = {"1": 0, "2a": 1, "2b": 2, "2c": 3}  # conv{s}_block{j}_0 is the projection


def _keras_block(stage, j, _, branch, kind):
    return f"conv{stage}_block{j}_{_BRANCH[branch]}_{kind}"


KERAS = {
    "keras": ResNetStyle("keras", {"conv": "conv1_conv", "bn": "conv1_bn"}, _keras_block,
                         _BN_NAMES, False, fc="predictions"),
    # keras-applications' first ResNet50 file, named after the Caffe model
    "keras (Caffe names)": ResNetStyle("keras (Caffe names)",
                                       {"conv": "conv1", "bn": "bn_conv1"}, caffe_block(False),
                                       _BN_NAMES, False, fc="fc1000"),
}
add_styles(KERAS, "keras")
