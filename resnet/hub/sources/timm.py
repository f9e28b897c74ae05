"""timm's ResNet Strikes Back weights (`resnetNN.a1_in1k`, timm/models/resnet.py
`default_cfgs`): torch-layout state dicts released on GitHub, named by timm's
clean_checkpoint with the first eight hex digits of their sha256 (torch.hub's rule). Their
evaluation config (`_rcfg`): crop_pct 0.95 at 224 (short side floor(224 / 0.95) = 235),
bicubic. timm lists their accuracy at its 288 test size only, so none is recorded here."""
from dataclasses import replace

from resnet.hub.entry import Download, Weights, add, sha256_prefix
from resnet.models.preprocessing import IMAGENET_RGB

RELEASES = "https://github.com/huggingface/pytorch-image-models/releases/download/v0.1-rsb-weights/"
STATED = "timm models/resnet.py default_cfgs: the release file name's sha256 prefix"
A1_RECIPE = replace(IMAGENET_RGB, resize_short_side=235, interpolation="bicubic")

_FILES = {
    "resnet18": "resnet18_a1_0-d63eafa0.pth",
    "resnet34": "resnet34_a1_0-46f8f793.pth",
    "resnet50": "resnet50_a1_0-14fe96d1.pth",
    "resnet101": "resnet101_a1_0-cdcb52a9.pth",
    "resnet152": "resnet152_a1_0-2eee8a7a.pth",
}

for _arch, _file in _FILES.items():
    add(Weights(
        f"{_arch}.a1_in1k", _arch, "torchvision",
        (Download((RELEASES + _file,), sha256_prefix(_file, STATED)),),
        publisher="timm", license="apache-2.0",
        accuracy_note="timm reports it at test size 288 (results-imagenet.csv), not at 224",
        recipe=A1_RECIPE, notes="ResNet Strikes Back, procedure A1 (arXiv:2110.00476)"))
