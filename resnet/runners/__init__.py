"""How a run's images flow from inputs through an engine into an output: a runner takes a
RunConfig, the engine and the decoders, and calls back per batch and per bad image, in list
order. Each runner is one file registered in RUNNERS; `local` runs on this machine.

Imports `resnet.inputs`, `resnet.common` and `resnet.errors`; the engine comes in as an object.
"""
from resnet.registry import Registry

#: runner name -> class with `(config, net, layers, decoders)` and `run(items, ...) -> Outcome`
RUNNERS = Registry("runner", __name__)
