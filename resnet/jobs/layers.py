"""`--job=layers`: every layer with its type, output shape and parameter counts."""
from __future__ import annotations

from resnet.jobs import job


@job("layers", reads=("arch", "layer_num", "variant", "output_layer"))
def run(config) -> int:
    from resnet.introspect.table import format_table
    from resnet.models import select

    spec = select(config.arch, config.layer_num, config.variant)
    if config.output_layer:  # lets a user check names before a long extract run
        spec.check_layers(config.output_layer.split(","))
    print(format_table(spec))
    return 0
