"""The graph a model family builds: named nodes in network order, each with its output shape.

A Node is one named layer (op, input names, attributes, output shape C x H x W); a Spec is a
network's nodes in order with the name of its architecture. Everything a family means by its
names (which layers are features by default, how the diagram groups them) is the family's
(models/family.py); the graph itself knows only nodes. `Nodes` builds one, asking each op for
its output shape.

Imports `resnet.errors`, `resnet.models.ops` and (for `Spec.family`) `resnet.models.archs`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from resnet.errors import ResnetError
from resnet.models.ops import OPS


@dataclass(frozen=True)
class Node:
    """One named layer: its op, the names it reads, its attributes and its output shape (C, H, W)."""

    name: str
    op: str  # a name in ops.OPS: data | conv | bn | relu | pool | addto | concat | fc | softmax
    inputs: tuple = ()
    attrs: dict = field(default_factory=dict, hash=False, compare=False)
    shape: tuple = ()

    @property
    def operation(self):
        """This node's Op (models/ops.py): what its parameters are and how it reads."""
        return OPS[self.op]

    def params(self) -> list[tuple[str, tuple]]:
        """(file suffix, shape) of each parameter this node owns, in v1 naming."""
        return self.operation.params(self)

    @property
    def kind(self) -> str:
        """Human-readable type, as the diagram and the layer listing show it."""
        return self.operation.kind(self)


class Nodes(list):
    """Nodes being built; each op infers its output shape from its inputs' shapes."""

    def add(self, name, op, inputs, shape=None, **attrs):
        inputs = tuple(inputs)
        if shape is None:
            shape = OPS[op].infer(attrs, [self.shape(i) for i in inputs])
        self.append(Node(name, op, inputs, attrs, tuple(shape)))
        return name

    def shape(self, name):
        return next(n.shape for n in reversed(self) if n.name == name)


@dataclass(frozen=True)
class Spec:
    """A network: its nodes in order, its depth and variant (the ResNet family's v1 words,
    kept in cache keys and manifests) and the registered name of its architecture."""

    layer_num: int
    nodes: tuple
    variant: str = "v1"
    arch: str = ""

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

    @property
    def input_shape(self) -> tuple:
        """(3, H, W) of the network's input."""
        return self.nodes[0].shape

    @property
    def input_size(self) -> int:
        return self.input_shape[-1]

    @property
    def family(self):
        """The Family (models/family.py) that built this spec and reads its names."""
        from resnet.models.archs import ARCHS

        return ARCHS[self.arch].family

    @property
    def title(self) -> str:
        """'ResNet-50 (v1 model zoo)', 'VGG-16 with batch norm': how messages name it."""
        return self.family.title(self)

    def out_shape(self, name: str, pool: str = "none") -> tuple:
        """A layer's output shape as written: (C,) for a (C, H, W) layer globally pooled."""
        shape = self[name].shape
        return shape[:1] if pool != "none" and len(shape) == 3 else shape

    def param_files(self) -> list[tuple[str, tuple]]:
        """Every v1 parameter file name (`_<layer>.<suffix>`) with its shape, in network order."""
        return [(f"_{n.name}.{suffix}", shape) for n in self.nodes for suffix, shape in n.params()]

    def param_count(self) -> int:
        """Values in the parameter files (BN statistics included)."""
        import math

        return sum(math.prod(shape) for _, shape in self.param_files())

    def default_features(self) -> list[str]:
        """The layers extract writes when none are named: the family's choice."""
        return self.family.default_features(self)

    def needed(self, outputs) -> list[Node]:
        """The nodes `outputs` are computed from (themselves included), in order."""
        names, stack = set(), list(outputs)
        while stack:
            name = stack.pop()
            if name not in names:
                names.add(name)
                stack.extend(self[name].inputs)
        return [n for n in self if n.name in names]

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
                f"unknown output layer {'; '.join(hints)} in {self.family.short(self)}; "
                "list the layers with --job=layers"
            )
        return names
