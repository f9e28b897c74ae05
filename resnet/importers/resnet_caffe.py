"""ResNet's key names in Kaiming He's Caffe models (the v1 zoo's source): conv1/bn_conv1,
res2a_branch2a/bn2a_branch2a, ...; ResNet-101/152 number the long stages' blocks b1, b2, ...
"""
from resnet.importers._resnet import ResNetStyle
from resnet.importers.base import add_styles


def caffe_block(numbered):
    """Caffe's block names: res2a, res2b, ... (ResNet-50); ResNet-101/152 number the long
    stages 3 and 4 after their first block: res4a, res4b1, res4b2, ..."""
    def block(stage, j, _, branch, kind):
        letter = ("a" if j == 1 else f"b{j - 1}") if numbered and stage in (3, 4) \
            else chr(ord("a") + j - 1)
        return f"{'bn' if kind == 'bn' else 'res'}{stage}{letter}_branch{branch}"
    return block


_BN_NAMES = {"w0": "gamma", "wbias": "beta", "w1": "mean", "w2": "var"}
#: the importer has merged BatchNorm + Scale under the BatchNorm layer's name
_STEM = {"conv": "conv1", "bn": "bn_conv1"}
CAFFE = {
    "caffe": ResNetStyle("caffe", _STEM, caffe_block(False), _BN_NAMES, True, fc="fc1000"),
    "caffe (b1, b2, ... blocks)": ResNetStyle("caffe", _STEM, caffe_block(True), _BN_NAMES,
                                              True, fc="fc1000"),
}
add_styles(CAFFE, "caffe")
