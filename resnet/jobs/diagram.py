"""`--job=diagram`: the network drawn with Graphviz (full or compact, layers highlighted)."""
from __future__ import annotations

import logging

from resnet.jobs import job

log = logging.getLogger("resnet")


@job("diagram", reads=("arch", "layer_num", "variant", "output", "output_layer", "compact"))
def run(config) -> int:
    """Render to --output (default resnet_N.png, or ARCH.png), with the .dot source beside it."""
    from resnet.introspect.diagram import render
    from resnet.models import select

    spec = select(config.arch, config.layer_num, config.variant)
    output = config.output or f"{spec.family.stem(spec)}.png"
    written = render(spec, output, config.layers_or(()), config.compact)
    log.info("wrote %s (%s%s)", " and ".join(written), spec.family.short(spec),
             ", compact" if config.compact else "")
    return 0
