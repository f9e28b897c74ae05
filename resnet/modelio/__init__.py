"""Model directories on disk: v1 parameter files, mean files (and Caffe's blobs: caffeblob),
restricted pickles,
`model.json` (depth, variant, preprocessing recipe), the demo model, class names, and
LoadedModel, which reads a directory once per run (parameters, checksum, preprocessing).

Imports `resnet.models`, `resnet.common` and `resnet.errors`; never Paddle.
"""
