"""`--job=layers`: every layer with its type, output shape and parameter counts."""
from __future__ import annotations

from resnet.jobs import job


@job("layers", reads=("layer_num", "variant", "output_layer"))
def run(config) -> int:
    from resnet.introspect.table import format_table
    from resnet.models import build

    spec = build(config.layer_num or 50, config.variant or "v1")
    if config.output_layer:  # lets a user check names before a long extract run
        spec.check_layers(config.output_layer.split(","))
    print(format_table(spec))
    return 0
