"""What a model family declares about its own names, and an architecture: a registered name
that builds one Spec.

A family (one file per family in this folder) says how its networks are titled, which layers
are features by default, how the diagram groups and folds its layers, and registers its
architectures in ARCHS (models/archs.py). Nothing outside the family file reads its names
apart.

Imports only `resnet.models.graph` (and through it ops, errors).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

from resnet.models.graph import Spec


class Fold(NamedTuple):
    """Units (ResNet identity blocks, ...) drawn as one summary node in a compact diagram."""

    id: str
    text: str  # e.g. "21 identity blocks"
    last: str  # the node whose shape the summary shows


class Family:
    """The base: every node in one column, no clusters, no folding."""

    name = ""

    def title(self, spec: Spec) -> str:
        return spec.arch

    def short(self, spec: Spec) -> str:
        """How an error message names the network."""
        return self.title(spec)

    def label(self, spec: Spec) -> str:
        """How a log line names the network."""
        return self.title(spec)

    def stem(self, spec: Spec) -> str:
        """The default file name stem of its diagram (and the graph's name in it)."""
        return spec.arch

    def default_features(self, spec: Spec) -> list[str]:
        raise NotImplementedError

    def cluster_of(self, name: str):
        """The diagram cluster a layer belongs to (None: outside every cluster)."""
        return None

    def cluster_label(self, spec: Spec, cluster, names: list[str]) -> str:
        return str(cluster)

    def cluster_top(self, spec: Spec, cluster, names: list[str]) -> str:
        """The layer a cluster's column is aligned on (the diagram puts the tops of all
        columns on one rank)."""
        return names[0]

    def folds(self, spec: Spec, keep: set) -> dict:
        """{layer name: Fold} for the layers a compact diagram draws as summary nodes; a layer
        in `keep` (highlighted) stays drawn in full, with its unit."""
        return {}


@dataclass(frozen=True)
class Arch:
    """A registered architecture: its family and the builder of its one Spec."""

    name: str
    family: Family
    builder: Callable[[], Spec] = field(compare=False, repr=False)
    summary: str = ""
    #: (layer_num, variant): the ResNet family's v1 spelling of this name; None elsewhere
    v1_spelling: tuple | None = None

    def build(self) -> Spec:
        return _built(self)


@functools.lru_cache(maxsize=None)
def _built(arch: Arch) -> Spec:
    spec = arch.builder()
    assert spec.arch == arch.name, (spec.arch, arch.name)
    return spec
