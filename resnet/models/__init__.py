"""The networks, described once. Each model family (one file here: resnet.py, vgg.py) builds
its architectures as Specs, ordered lists of named nodes (graph.py) whose ops (ops.py) say
what they compute, and registers them by name in ARCHS (archs.py: `resnet50`, `resnet50_v1`,
`vgg16`, ...). The executor, the parameter file names, the layer listing, the diagram and the
importers all read the spec, and ask each node's op and the spec's family what they mean.

This file only gathers the public names (from archs.py and resnet.py); no module of the
folder imports it. Nothing here imports Paddle or reads files.
"""
from __future__ import annotations

from resnet.errors import ResnetError
from resnet.models.archs import ARCHS, arch_names, build_arch, list_models
from resnet.models.resnet import build, depths, variants

__all__ = ["ARCHS", "arch_names", "build", "build_arch", "depths", "list_models", "select",
           "variants"]


def select(arch: str | None = None, layer_num: int | None = None, variant: str | None = None):
    """The Spec a job without a model folder runs: `arch` by name, or a ResNet by its v1
    spellings (default: the v1 zoo's ResNet-50)."""
    if arch:
        if layer_num is not None or variant is not None:
            raise ResnetError("--arch names the whole network: leave out --layer_num and "
                              "--variant (their v1 spellings)")
        return build_arch(arch)
    return build(layer_num or 50, variant or "v1")
