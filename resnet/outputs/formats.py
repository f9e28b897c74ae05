"""The output format registry: name -> Sink class (outputs/base.py states the contract each
must keep), filled by the format modules of this folder when it is first asked.

Imports only `resnet.registry`, so the formats' shared base can use it without importing the
folder's __init__.
"""
from resnet.registry import Registry

#: output format name -> Sink class
FORMATS = Registry("output format", "resnet.outputs")
