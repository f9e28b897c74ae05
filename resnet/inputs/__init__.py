"""From `--data` to network input: image lists and directory trees (lists), decoding and
v1 / recipe preprocessing with OpenCV (imaging), and the pool of decoding worker processes
that delivers crops in list order with memory bounded (decoding).

Imports `resnet.models` (input size), `resnet.modelio` (recipes), `resnet.common`; never Paddle.
"""
