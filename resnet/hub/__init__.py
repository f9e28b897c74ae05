"""Pretrained weights by name (`--model=resnet50.tv_in1k`): the registry of published
checkpoints (one file per publisher in sources/), and what turns a name into a model folder
(fetch.py: download with resume and checksum; install.py: convert once and install under the
cache's lock).

Sits after importers (it converts with them) and before outputs; imports models, modelio,
common and importers, never Paddle.
"""
from resnet.registry import Registry

#: "ARCH.TAG" -> entry.Weights, filled by the modules of resnet/hub/sources/
WEIGHTS = Registry("pretrained weights", "resnet.hub.sources")
