"""The layer listing: every layer with its type, output shape and parameter counts."""
from __future__ import annotations

import math
from typing import NamedTuple

from resnet.models.graph import Node, Spec


class Row(NamedTuple):
    """One layer of the listing: learnable parameters and BN moving statistics counted apart."""

    name: str
    type: str
    shape: str
    params: int
    moving_stats: int


class ParamCounts(NamedTuple):
    """Element counts: learnable weights, BN moving mean/variance (.w1/.w2), files on disk."""

    learnable: int
    moving_stats: int
    files: int

    @property
    def total(self) -> int:
        """All values in the parameter files (what a v1 model directory holds)."""
        return self.learnable + self.moving_stats


def shape_text(shape: tuple) -> str:
    """(C, H, W) as 'CxHxW', the way v1 users read layer sizes."""
    return "x".join(str(d) for d in shape)


def _count(node: Node, stats: bool) -> int:
    """Elements of the node's learnable parameters, or (stats) of its BN moving mean/var."""
    return sum(math.prod(shape) for suffix, shape in node.params()
               if (suffix in node.operation.statistics) == stats)


def layer_table(spec: Spec) -> list[Row]:
    """Every layer in network order with its type, output shape and parameter counts."""
    return [Row(n.name, n.kind, shape_text(n.shape), _count(n, False), _count(n, True))
            for n in spec]


def param_counts(spec: Spec) -> ParamCounts:
    """Totals over the network; `.total` equals the element count of its parameter files."""
    rows = layer_table(spec)
    return ParamCounts(sum(r.params for r in rows), sum(r.moving_stats for r in rows),
                       len(spec.param_files()))


def format_table(spec: Spec) -> str:
    """The layer listing as printed by `--job=layers`: a table, then the totals."""
    rows = layer_table(spec)
    head = ("name", "type", "output shape", "params", "bn stats")
    cells = [head] + [(r.name, r.type, r.shape, f"{r.params:,}", f"{r.moving_stats:,}")
                      for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]

    def line(c):
        return (f"{c[0]:<{widths[0]}}  {c[1]:<{widths[1]}}  {c[2]:<{widths[2]}}  "
                f"{c[3]:>{widths[3]}}  {c[4]:>{widths[4]}}").rstrip()

    counts = param_counts(spec)
    totals = [("learnable parameters", counts.learnable),
              ("batch norm moving statistics (.w1, .w2 files)", counts.moving_stats),
              (f"total in the {counts.files} parameter files", counts.total)]
    pad = max(len(t) for t, _ in totals) + 1
    out = [f"{title(spec)}: {len(rows)} layers", line(head),
           line(tuple("-" * w for w in widths))]
    out += [line(c) for c in cells[1:]]
    out += [""] + [f"{t + ':':<{pad}}  {n:>12,}" for t, n in totals]
    return "\n".join(out)


def title(spec) -> str:
    return spec.title
