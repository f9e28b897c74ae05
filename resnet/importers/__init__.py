"""Weights from other systems into v1 model directories. Each importer is one file that reads
its checkpoint format without the foreign framework and registers itself in IMPORTERS, and
its naming styles in base.STYLES (_gluon.py holds MXNet Gluon's, shared by onnx_zoo.py and
mxnet.py); base.py maps foreign key names onto the spec's node names, fits depth, variant
and naming style, and writes the directory atomically (with a model.json recording the
source and its preprocessing).

Imports `resnet.models`, `resnet.modelio`, `resnet.common`; never Paddle.
"""
from resnet.registry import Registry

#: --from name -> importer: `styles` (key naming styles tried, best fit wins),
#: `looks_like(first 256 bytes)`, `read(path) -> {key: array}`, `suffixes` (for help texts),
#: optionally `variants` (tried in order; default v1.5) and `recipe` (default ImageNet RGB)
IMPORTERS = Registry("checkpoint format", __name__)
