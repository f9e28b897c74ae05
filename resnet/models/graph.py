"""The graph a model family builds: named nodes in network order, and the names' grammar.

A Node is one named layer (op, input names, attributes, output shape C x H x W); a Spec is a
network's nodes in order. Layer names are v1's (`resK_J_branch2a_conv`, ...) in every family;
`block_of` and `parse_branch` are the one place that reads them apart.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import NamedTuple

from resnet.errors import ResnetError

INPUT_SIZE = 224
NUM_CLASSES = 1000
BN_EPSILON = 1e-5
_BLOCK = re.compile(r"^res(\d+)_(\d+)_")
_BRANCH = re.compile(r"^res(\d+)_(\d+)_(branch1|branch2a|branch2b|branch2c|preact)_(conv|bn)$")


class Branch(NamedTuple):
    """`res3_1_branch2b_conv` read apart: stage 3, block 1, branch '2b', kind 'conv'."""

    stage: int
    block: int
    branch: str
    kind: str


def block_of(name: str) -> tuple[int, int] | None:
    """(stage, block) of a `resK_J_...` layer, else None (stem and head layers)."""
    m = _BLOCK.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def parse_branch(name: str) -> Branch | None:
    """The parts of a `resK_J_branchX_{conv,bn}` name (or a pre-activation unit's
    `resK_J_preact_bn`: branch 'preact'), else None."""
    m = _BRANCH.match(name)
    return (Branch(int(m.group(1)), int(m.group(2)), m.group(3).replace("branch", ""),
                   m.group(4)) if m else None)


@dataclass(frozen=True)
class Node:
    """One named layer: its op, the names it reads, its attributes and its output shape (C, H, W)."""

    name: str
    op: str  # data | conv | bn | pool | addto | fc
    inputs: tuple = ()
    attrs: dict = field(default_factory=dict, hash=False, compare=False)
    shape: tuple = ()

    @property
    def operation(self):
        """This node's Op (models/ops.py): what its parameters are and how it reads."""
        from resnet.models.ops import OPS

        return OPS[self.op]

    def params(self) -> list[tuple[str, tuple]]:
        """(file suffix, shape) of each parameter this node owns, in v1 naming."""
        return self.operation.params(self)

    @property
    def kind(self) -> str:
        """Human-readable type, as the diagram and the layer listing show it."""
        return self.operation.kind(self)


@dataclass(frozen=True)
class Spec:
    layer_num: int
    nodes: tuple
    variant: str = "v1"

    def __post_init__(self):
        object.__setattr__(self, "_index", {n.name: i for i, n in enumerate(self.nodes)})

    def __iter__(self):
        return iter(self.nodes)

    def __len__(self):
        return len(self.nodes)

    def __getitem__(self, name: str) -> Node:
        return self.nodes[self._index[name]]

    def __contains__(self, name) -> bool:
        return name in self._index

    @property
    def names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def out_shape(self, name: str, pool: str = "none") -> tuple:
        """A layer's output shape as written: (C,) for a (C, H, W) layer globally pooled."""
        shape = self[name].shape
        return shape[:1] if pool != "none" and len(shape) == 3 else shape

    def param_files(self) -> list[tuple[str, tuple]]:
        """Every v1 parameter file name (`_<layer>.<suffix>`) with its shape, in network order."""
        return [(f"_{n.name}.{suffix}", shape) for n in self.nodes for suffix, shape in n.params()]

    def default_features(self) -> list[str]:
        """The last block's final conv and bn: v1's default extract layers at every depth."""
        last = [n for n in self.nodes if n.op == "addto"][-1]  # addto(shortcut, branch bn)
        bn = last.inputs[1]
        return [self[bn].inputs[0], bn]

    def check_layers(self, names) -> list[str]:
        """The names as a list, or a ResnetError naming each unknown one with its close matches."""
        import difflib

        names = [n.strip() for n in names if n.strip()]
        if not names:
            raise ResnetError("no output layer given (--output_layer)")
        bad = [n for n in names if n not in self]
        if bad:
            hints = []
            for n in bad:
                close = difflib.get_close_matches(n, self.names, n=5, cutoff=0.6)
                hints.append(f"'{n}'" + (f" (did you mean: {', '.join(close)}?)" if close else ""))
            raise ResnetError(
                f"unknown output layer {'; '.join(hints)} in ResNet-{self.layer_num}; "
                "list the layers with --job=layers"
            )
        return names
