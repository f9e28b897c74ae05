"""The network, described once. A model family registers a builder that turns a depth into a
Spec: an ordered list of named nodes (op, inputs, attributes, output shape). The executor,
the parameter file names, the layer listing, the diagram and the importers all read the spec,
and ask each node's op (ops.py) what it means instead of branching on op names.

Imports only `resnet.errors` and `resnet.registry`: no Paddle, no files.
"""
from __future__ import annotations

from resnet.errors import ResnetError
from resnet.registry import Registry

#: variant name -> builder(layer_num) -> Spec, with the depths it supports in `.depths`
MODELS = Registry("variant", __name__)
#: the v1 zoo's depths (named first in errors) and the default
ZOO_DEPTHS = (50, 101, 152)


def build(layer_num: int = 50, variant: str = "v1"):
    """The Spec of `variant` at `layer_num` layers, or a one-line error naming the choices."""
    if variant not in MODELS:
        raise ResnetError(f"unsupported variant {variant!r}: choose one of "
                          f"{', '.join(MODELS.names())}")
    builder = MODELS[variant]
    try:
        depth = int(layer_num)
        if depth not in builder.depths:
            raise ValueError
    except (TypeError, ValueError):
        zoo = ", ".join(str(d) for d in builder.depths if d in ZOO_DEPTHS)
        other = ", ".join(str(d) for d in builder.depths if d not in ZOO_DEPTHS)
        raise ResnetError(f"unsupported layer_num {layer_num!r}: choose one of {zoo} (the v1 "
                          f"zoo's depths)" + (f" or {other}" if other else "")) from None
    spec = builder(depth)
    return spec


def variants() -> list[str]:
    return MODELS.names()


def depths(variant: str = "v1") -> tuple:
    return tuple(MODELS[variant].depths)


def list_models() -> list[tuple[str, int]]:
    """Every (variant, depth) the registry can build."""
    return [(name, d) for name, builder in MODELS.items() for d in builder.depths]
