"""`--job=check`: validate a model directory and mean file without Paddle.

It reads and checks every parameter file but runs nothing, so it works on an install
without Paddle (get_model.sh uses it to validate a download before moving it into place).
"""
from __future__ import annotations

import logging

from resnet.jobs import job

log = logging.getLogger("resnet")


@job("check", needs=("model",), reads=("arch", "layer_num", "variant", "mean"),
     named_weights=True)
def run(config) -> int:
    """Validate a model directory (and --mean) without running anything."""
    from resnet.modelio import loaded, modelinfo

    model = loaded.resolve(config.model_settings).load()
    total = sum(v.size for v in model.values.values())
    spec, resnet = model.spec, model.spec.family.name == "resnet"
    what = f"v1 ResNet-{spec.layer_num}" if resnet else f"{spec.title} ({spec.arch})"
    card = ""
    if model.resolved.info:
        card = f"({spec.variant}, {modelinfo.MODEL_JSON}) " if resnet \
            else f"({modelinfo.MODEL_JSON}) "
    print(f"ok: {config.model} is a valid {what} model " + card
          + f"({len(model.values)} parameter files, {total:,} values)"
          + (f"; mean {config.mean} ok" if config.mean else ""))
    return 0
