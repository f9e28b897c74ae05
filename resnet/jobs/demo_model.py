"""`--job=demo_model`: a seeded random model in the v1 format, for trying things out."""
from __future__ import annotations

import logging

from resnet.jobs import job


@job("demo_model", needs=("model",), reads=("arch", "layer_num", "seed"))
def run(config) -> int:
    from resnet.modelio.demo import write_demo_model
    from resnet.models import select

    select(config.arch, config.layer_num)  # --arch with --layer_num: one line, nothing written
    write_demo_model(config.model, config.layer_num or 50, config.seed, config.arch)
    logging.getLogger("resnet").info("demo model (random weights) in %s", config.model)
    return 0
