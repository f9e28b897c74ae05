"""`--job=diagram`: the network drawn with Graphviz (full or compact, layers highlighted)."""
from __future__ import annotations

import logging

from resnet.jobs import job

log = logging.getLogger("resnet")


@job("diagram", reads=("layer_num", "variant", "output", "output_layer", "compact"))
def run(config) -> int:
    """Render to --output (default resnet_N.png), with the .dot source beside it."""
    from resnet.introspect.diagram import render
    from resnet.models import build

    spec = build(config.layer_num or 50, config.variant or "v1")
    output = config.output or f"resnet_{spec.layer_num}.png"
    written = render(spec, output, config.layers_or(()), config.compact)
    log.info("wrote %s (ResNet-%d%s)", " and ".join(written), spec.layer_num,
             ", compact" if config.compact else "")
    return 0
