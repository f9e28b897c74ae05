"""MXNet Gluon model zoo weights (python/mxnet/gluon/model_zoo/model_store.py, MXNet 1.9:
`_model_sha1`). Each is a zip, `{name}-{sha1[:8]}.zip`, holding `{name}-{sha1[:8]}.params`;
the sha1 MXNet checks is the .params member's. Gluon's ResNet v1 has biases on its 1x1 convs
and pads its max pool by one (the `_v1_pad1` network); v2 is the pre-activation network.
Accuracies: MXNet's model zoo table (top-1 / top-5) where it lists the model."""
from resnet.hub.entry import Checksum, Download, Weights, add
from resnet.importers.inception_torch import TORCHVISION_RECIPE
from resnet.models.preprocessing import IMAGENET_RGB

HOST = "https://apache-mxnet.s3-accelerate.dualstack.amazonaws.com/gluon/models/"
STATED = "MXNet gluon/model_zoo/model_store.py _model_sha1 (of the .params in the zip)"

# Gluon name, architecture, sha1, top-1, top-5
_FILES = [
    ("resnet18_v1", "resnet18_v1_pad1", "a0666292f0a30ff61f857b0b66efc0228eb6a54b", None, None),
    ("resnet34_v1", "resnet34_v1_pad1", "48216ba99a8b1005d75c0f3a0c422301a0473233", None, None),
    ("resnet50_v1", "resnet50_v1_pad1", "0aee57f96768c0a2d5b23a6ec91eb08dfb0a45ce", 76.47, None),
    ("resnet101_v1", "resnet101_v1_pad1", "d988c13d6159779e907140a638c56f229634cb02", 78.34,
     None),
    ("resnet152_v1", "resnet152_v1_pad1", "671c637a14387ab9e2654eafd0d493d86b1c8579", 79.00,
     None),
    ("resnet18_v2", "resnet18_v2", "a81db45fd7b7a2d12ab97cd88ef0a5ac48b8f657", None, None),
    ("resnet34_v2", "resnet34_v2", "9d6b80bbc35169de6b6edecffdd6047c56fdd322", None, None),
    ("resnet50_v2", "resnet50_v2", "ecdde35339c1aadbec4f547857078e734a76fb49", 77.11, None),
    ("resnet101_v2", "resnet101_v2", "18e93e4f48947e002547f50eabbcc9c83e516aa6", 78.53, None),
    ("resnet152_v2", "resnet152_v2", "f2695542de38cf7e71ed58f02893d82bb409415e", 79.21, None),
    ("vgg16", "vgg16", "e660d4569ccb679ec68f1fd3cce07a387252a90a", 73.23, 91.32),
    ("vgg16_bn", "vgg16_bn", "7f01cf050d357127a73826045c245041b0df7363", 73.10, 91.76),
    ("vgg19", "vgg19", "ad2f660d101905472b83590b59708b71ea22b2e5", 74.11, 91.35),
    ("vgg19_bn", "vgg19_bn", "f360b758e856f1074a85abd5fd873ed1d98297c3", 74.33, 91.85),
    ("inceptionv3", "inception_v3", "ed47ec45a937b656fcc94dabde85495bbef5ba1f", 77.55, 93.64),
]
#: Gluon's Inception v3 weights are torchvision's, converted: assumed to take its recipe
#: (unchecked against the real file: docs/inception.md)
_RECIPES = {"inception_v3": TORCHVISION_RECIPE}

for _gluon, _arch, _sha1, _top1, _top5 in _FILES:
    _stem = f"{_gluon}-{_sha1[:8]}"
    add(Weights(
        f"{_arch}.gluon", _arch, "mxnet",
        (Download((f"{HOST}{_stem}.zip",),
                  Checksum("sha1", _sha1, STATED, member=f"{_stem}.params"),
                  member=f"{_stem}.params"),),
        publisher="MXNet Gluon model zoo", license="apache-2.0", top1=_top1, top5=_top5,
        accuracy_note=("MXNet Gluon model zoo table" if _top1 is not None
                       else "not recorded here"),
        recipe=_RECIPES.get(_arch, IMAGENET_RGB), notes=f"Gluon's {_gluon}"))
