"""How a run's images flow from inputs through an engine into an output. Each runner is one
file registered in RUNNERS, and every runner keeps one protocol (base.py: Runner): built
from the RunConfig alone (cheap, nothing started), it says where its engines run, adds its
own manifest entries, and runs a whole extract (`extract`: computes and writes, the journal
kept) or streams batches back in list order (`streaming`, for predict). `local` (this
machine) decodes in worker processes and writes one sink in list order; `ray` (ray_data.py)
runs decoding tasks and engine actors on a Ray cluster whose actors write part files
(outputs/parts.py), joined in list order at the end. Every runner builds its engines with
runtime.engine.build (local.engine_for hands it the run's EngineSettings, config.py).

Imports `resnet.inputs`, `resnet.outputs`, `resnet.runtime` (inside functions: listing the
runners loads neither OpenCV nor Paddle), `resnet.modelio`, `resnet.common`; never jobs.
"""
from resnet.registry import Registry

#: runner name -> class keeping the Runner protocol of base.py
RUNNERS = Registry("runner", __name__)
