"""Weights from other systems into v1 model directories. Each importer is one file that reads
its checkpoint format without the foreign framework and registers itself in IMPORTERS; base.py
maps foreign key names onto the spec's node names, fits depth and naming style, and writes the
directory atomically (with a model.json recording the source and its preprocessing).

Imports `resnet.models`, `resnet.modelio`, `resnet.common`; never Paddle.
"""
from resnet.registry import Registry

#: --from name -> importer: `styles` (key naming styles tried, best fit wins),
#: `looks_like(first 16 bytes)`, `read(path) -> {key: array}`, `suffixes` (for help texts)
IMPORTERS = Registry("checkpoint format", __name__)
