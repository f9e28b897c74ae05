"""Weights from other systems into v1 model directories. Each importer is one file that reads
its checkpoint format without the foreign framework and registers itself in IMPORTERS, with
its ResNet naming styles in base.STYLES (_gluon.py holds MXNet Gluon's, shared by onnx_zoo.py
and mxnet.py). Another family registers its naming per source in files of its own
(vgg_torch.py, vgg_keras.py, vgg_gluon.py, vgg_caffe.py), added to the formats' styles through
base.FAMILY_STYLES. base.py maps foreign key names onto the spec's node names, fits the
architecture (from the names and shapes, or --arch) and the naming style, and writes the
directory atomically (with a model.json recording the architecture, the source and its
preprocessing).

Imports `resnet.models`, `resnet.modelio`, `resnet.common`; never Paddle.
"""
from resnet.registry import Registry

#: --from name -> importer: `styles` (key naming styles tried, best fit wins),
#: `looks_like(first 256 bytes)`, `read(path) -> {key: array}`, `suffixes` (for help texts),
#: optionally `variants` (tried in order; default v1.5) and `recipe` (default ImageNet RGB)
IMPORTERS = Registry("checkpoint format", __name__)
