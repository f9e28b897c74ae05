"""torchvision's ImageNet weights (torchvision/models/resnet.py, vgg.py and inception.py,
the `*_Weights` enums). torchvision states no separate checksum: torch.hub checks the hex
digits after the last "-" of the file name against the start of the file's sha256
(`check_hash`), which is the rule recorded here. Accuracies are the enums' `acc@1` /
`acc@5` (single crop: 224, Inception v3's 299)."""
from dataclasses import replace

from resnet.hub.entry import Download, Weights, add, sha256_prefix
from resnet.importers.inception_torch import TORCHVISION_RECIPE
from resnet.models.preprocessing import IMAGENET_RGB

HOST = "https://download.pytorch.org/models/"
STATED = "torchvision models/*.py: the file name's hash, checked by torch.hub"
#: the IMAGENET1K_V2 weights are evaluated at resize 232, crop 224 (their enum's transforms)
V2_RECIPE = replace(IMAGENET_RGB, resize_short_side=232)

# name, file, top-1, top-5, recipe
_FILES = [
    ("resnet18.tv_in1k", "resnet18-f37072fd.pth", 69.758, 89.078, IMAGENET_RGB),
    ("resnet34.tv_in1k", "resnet34-b627a593.pth", 73.314, 91.420, IMAGENET_RGB),
    ("resnet50.tv_in1k", "resnet50-0676ba61.pth", 76.130, 92.862, IMAGENET_RGB),
    ("resnet101.tv_in1k", "resnet101-63fe2227.pth", 77.374, 93.546, IMAGENET_RGB),
    ("resnet152.tv_in1k", "resnet152-394f9c45.pth", 78.312, 94.046, IMAGENET_RGB),
    ("resnet50.tv2_in1k", "resnet50-11ad3fa6.pth", 80.858, 95.434, V2_RECIPE),
    ("resnet101.tv2_in1k", "resnet101-cd907fc2.pth", 81.886, 95.780, V2_RECIPE),
    ("resnet152.tv2_in1k", "resnet152-f82ba261.pth", 82.284, 96.002, V2_RECIPE),
    ("vgg16.tv_in1k", "vgg16-397923af.pth", 71.592, 90.382, IMAGENET_RGB),
    ("vgg16_bn.tv_in1k", "vgg16_bn-6c64b313.pth", 73.360, 91.516, IMAGENET_RGB),
    ("vgg19.tv_in1k", "vgg19-dcbb9e9d.pth", 72.376, 90.876, IMAGENET_RGB),
    ("vgg19_bn.tv_in1k", "vgg19_bn-c79401a0.pth", 74.218, 91.842, IMAGENET_RGB),
    # transform_input's [-1, 1] after a 342 resize and a 299 crop; the aux head is skipped
    ("inception_v3.tv_in1k", "inception_v3_google-0cc3c7bd.pth", 77.294, 93.450,
     TORCHVISION_RECIPE),
]

for _name, _file, _top1, _top5, _recipe in _FILES:
    add(Weights(
        _name, _name.split(".")[0], "torchvision",
        (Download((HOST + _file,), sha256_prefix(_file, STATED)),),
        publisher="torchvision", license="bsd-3-clause",
        top1=_top1, top5=_top5, accuracy_note="ImageNet val, single crop (torchvision docs)",
        recipe=_recipe,
        notes="IMAGENET1K_V2: torchvision's new training recipe" if "tv2" in _name else ""))
