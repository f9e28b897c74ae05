"""`--job=check`: validate a model directory and mean file without Paddle.

It reads and checks every parameter file but runs nothing, so it works on an install
without Paddle (get_model.sh uses it to validate a download before moving it into place).
"""
from __future__ import annotations

import logging

from . import demo, modelinfo, params as params_io

log = logging.getLogger("resnet")


def check(args) -> int:
    """Validate a model directory (and --mean) without running anything."""
    spec, info = modelinfo.resolve(args)
    values = params_io.load_model(args.model, spec)
    modelinfo.preprocessing(info, args.mean)
    total = sum(v.size for v in values.values())
    print(f"ok: {args.model} is a valid v1 ResNet-{spec.layer_num} model "
          + (f"({spec.variant}, {modelinfo.MODEL_JSON}) " if info else "")
          + f"({len(values)} parameter files, {total:,} values)"
          + (f"; mean {args.mean} ok" if args.mean else ""))
    if demo.is_demo(args.model):
        log.warning(demo.WARNING)
    return 0
