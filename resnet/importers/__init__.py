"""Weights from other systems into v1 model directories. Each importer is one file that reads
its checkpoint format without the foreign framework and registers itself in IMPORTERS
(caffe.py, keras.py, mxnet.py, onnx_zoo.py, paddle.py, safetensors.py, torchvision.py;
_gluon.py holds what the two readers of Gluon-made files share). Each family registers its
key naming per source in files of its own (resnet_torch.py, resnet_caffe.py, resnet_keras.py,
resnet_mxnet.py; vgg_torch.py, vgg_keras.py, vgg_gluon.py, vgg_caffe.py) with
base.add_styles, which names the formats whose importers try them. base.py maps foreign key names onto the spec's node names, fits the
architecture (from the names and shapes, or --arch) and the naming style, and writes the
directory atomically (with a model.json recording the architecture, the source and its
preprocessing).

Imports `resnet.models`, `resnet.modelio`, `resnet.common`; never Paddle.
"""
from resnet.registry import Registry

#: --from name -> importer: `looks_like(first 256 bytes)`, `read(path) -> {key: array}`, `suffixes` (for help texts),
#: optionally `variants` (tried in order; default v1.5) and `recipe` (default ImageNet RGB)
IMPORTERS = Registry("checkpoint format", __name__)
