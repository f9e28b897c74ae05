"""How a run's images flow from inputs through an engine into an output. Each runner is one
file registered in RUNNERS. `local` (this machine) takes a RunConfig, the engine and the
decoders, and calls back per batch and per bad image, in list order. `ray` (ray_data.py,
`parallel_writers`) runs decoding tasks and engine actors on a Ray cluster whose actors write
part files themselves (outputs/parts.py); the job joins them in list order.

Imports `resnet.inputs`, `resnet.common`, `resnet.errors` and (ray) `resnet.outputs.parts`;
the local engine comes in as an object, Ray's actors build theirs (jobs._steps.build_engine).
"""
from resnet.registry import Registry

#: runner name -> class with `(config, net, layers, decoders)` and `run(items, ...) -> Outcome`
RUNNERS = Registry("runner", __name__)
