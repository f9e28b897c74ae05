"""What runs the network: importing Paddle and choosing the device (paddle_env), the dygraph
executor built from the spec (network), the static export (static), the compiled and cached
Paddle Inference engine (engine), the same engine run by one process per core (streams),
its on-disk cache with a size cap (cache) and deployment exports (export).

The only room that imports Paddle (cache.py does not, so --job=cache stays light); it reads
`resnet.models`, `resnet.modelio`, `resnet.common` and `resnet.config` (the option lists).
Engines are built here (engine.build, from plain arguments) for every runner.
"""
