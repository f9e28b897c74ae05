"""Network diagrams and the layer listing, both read from the one network spec.

Diagram: one node per v1 layer, labelled with its name, type and output shape (C x H x W);
edges follow the data flow, so every `addto` gets two: its shortcut and its `branch2c_bn`.
Each stage res2..res5 is a cluster. Layers named in `highlight` (`--output_layer`) get a
thick red border and a yellow fill, so a user sees where their features come from.

Compact (`compact=True`, `--compact`): in each stage blocks 1 (the projection block) and 2
(the pattern of an identity block) stay in full and every run of the remaining identity
blocks becomes one summary node, e.g. "res4_3 … res4_23 (21 identity blocks)". A block
holding a highlighted layer always stays expanded, splitting the run around it.
ResNet-152 goes from 364 nodes to 74 (so do 50 and 101: 126 and 245 to 74).

Rendering needs the Graphviz `dot` binary (Debian: `apt-get install graphviz`); the `.dot`
source is always written next to the rendered file. Without `dot` the `.dot` is still written
and `render` raises GraphvizMissing: the CLI prints it as one line and exits 1, because the
picture the user asked for does not exist and scripts must not carry on as if it did.

Nothing here imports Paddle; `graphviz` (the Python package) is imported only when drawing.
"""
from __future__ import annotations

import html
import logging
import math
import os
import re
from typing import NamedTuple

from .errors import ResnetError
from .spec import Node, Spec

#: Output suffixes `render` understands, and the Graphviz format each one asks for.
FORMATS = {".dot": None, ".png": "png", ".svg": "svg", ".pdf": "pdf"}
#: Node attributes that mark a highlighted (`--output_layer`) layer.
HIGHLIGHT = {"color": "#d62728", "penwidth": "3", "fillcolor": "#ffe066"}
#: Fill colour per op, so convs, batch norms and joins read apart at a glance.
FILL = {"data": "#eeeeee", "conv": "#cfe2f3", "bn": "#d9ead3", "pool": "#fce5cd",
        "addto": "#ead1dc", "fc": "#fff2cc"}
INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew "
                "install graphviz; conda: conda install -c conda-forge graphviz)")
_BLOCK = re.compile(r"^res(\d)_(\d+)_")

log = logging.getLogger("resnet")


class GraphvizMissing(ResnetError):
    """The `dot` binary is not on PATH; the `.dot` source was written anyway."""


# ---------------------------------------------------------------- layer listing

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
               if (node.op == "bn" and suffix in ("w1", "w2")) == stats)


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
    out = [f"{_title(spec)}: {len(rows)} layers", line(head),
           line(tuple("-" * w for w in widths))]
    out += [line(c) for c in cells[1:]]
    out += [""] + [f"{t + ':':<{pad}}  {n:>12,}" for t, n in totals]
    return "\n".join(out)


# ---------------------------------------------------------------- diagram

def _block(name: str):
    """(stage, block) of a `resK_J_...` layer, else None (stem and head layers)."""
    m = _BLOCK.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _stages(spec: Spec) -> dict:
    """{stage: its last layer} for res2..res5: block count and output shape read from it."""
    return {_block(n.name)[0]: n for n in spec if _block(n.name)}


def _collapsed(spec: Spec, highlight: set) -> dict:
    """{(stage, block): Fold} for the identity blocks that compact mode folds away."""
    keep = {_block(name) for name in highlight if _block(name)}
    folded = {}
    for stage, last in _stages(spec).items():
        run: list[int] = []
        for j in list(range(3, _block(last.name)[1] + 1)) + [None]:  # None flushes the run
            if j is not None and (stage, j) not in keep:
                run.append(j)
                continue
            if run:
                fold = Fold(stage, run[0], run[-1])
                folded.update({(stage, b): fold for b in run})
            run = []
    return folded


class Fold(NamedTuple):
    """A run of identity blocks first..last of one stage, drawn as one summary node."""

    stage: int
    first: int
    last: int

    @property
    def id(self) -> str:
        first, last = f"res{self.stage}_{self.first}", f"res{self.stage}_{self.last}"
        return first if first == last else f"{first} … {last}"

    def label(self, spec: Spec) -> str:
        n = self.last - self.first + 1
        out = spec[f"res{self.stage}_{self.last}_addto"].shape
        return _label(self.id, f"{n} identity block{'s' * (n > 1)}", shape_text(out))


def _label(title: str, *lines: str, note: str = "") -> str:
    body = "".join(f"<br/>{html.escape(t)}" for t in lines)
    if note:
        body += f'<br/><font color="#d62728"><b>{html.escape(note)}</b></font>'
    return f"<<b>{html.escape(title)}</b>{body}>"


def diagram(spec: Spec, highlight=(), compact: bool = False):
    """The network as a `graphviz.Digraph` (see the module docstring for what it shows).

    Unknown `highlight` names raise a ResnetError naming close matches.
    """
    import graphviz

    marked = set(spec.check_layers(list(highlight))) if highlight else set()
    folded = _collapsed(spec, marked) if compact else {}

    def ident(name):
        fold = folded.get(_block(name))
        return fold.id if fold else name

    # Consecutive layers of one stage form a group; the stem and the head have stage None.
    groups: list[tuple] = []
    seen = set()
    for node in spec:
        nid = ident(node.name)
        if nid in seen:
            continue
        seen.add(nid)
        fold = folded.get(_block(node.name))
        if fold:
            item = (nid, fold.label(spec),
                    {"shape": "box3d", "style": "filled", "fillcolor": "#f3f3f3"})
        else:
            attrs, note = {"fillcolor": FILL.get(node.op, "white")}, ""
            if node.name in marked:
                attrs.update(HIGHLIGHT)
                note = "--output_layer"
            item = (nid, _label(node.name, node.kind, shape_text(node.shape), note=note), attrs)
        stage = (_block(node.name) or (None,))[0]
        if not groups or groups[-1][0] != stage:
            groups.append((stage, []))
        groups[-1][1].append(item)

    title = _title(spec) + (", compact" if compact else "")
    g = graphviz.Digraph(f"resnet_{spec.layer_num}", comment=title)
    g.attr(label=title, labelloc="t", fontsize="20", fontname="Helvetica", newrank="true")
    g.attr("node", shape="box", style="rounded,filled", fontname="Helvetica", fontsize="11")
    g.attr("edge", arrowsize="0.6")
    for stage, items in groups:
        if stage is None:
            for nid, label, attrs in items:
                g.node(nid, label, **attrs)
            continue
        last = _stages(spec)[stage]
        with g.subgraph(name=f"cluster_res{stage}") as c:
            c.attr(label=f"res{stage}: {_block(last.name)[1]} blocks, {shape_text(last.shape)}",
                   style="rounded,filled", fillcolor="#fafafa", color="#999999",
                   fontname="Helvetica", fontsize="14", labeljust="l")
            for nid, label, attrs in items:
                c.node(nid, label, **attrs)

    # Layout: the stages stand side by side as columns, not as one very tall strip. Edges into
    # a new stage do not constrain the ranks, the stages' first layers share a rank, and
    # invisible edges from the stem (pool1) order the columns res2 | res3 | res4 | res5.
    edges = set()
    for node in spec:
        dst, stage = ident(node.name), _block(node.name)
        for name in node.inputs:
            src = ident(name)
            if src == dst or (src, dst) in edges:
                continue
            edges.add((src, dst))
            before = _block(name)
            jump = stage and before and before[0] != stage[0]
            g.edge(src, dst, **({"constraint": "false", "color": "#555555"} if jump else {}))
    tops = [f"res{stage}_1_branch2a_conv" for stage, _ in groups if stage is not None]
    with g.subgraph() as row:
        row.attr(rank="same")
        for top in tops:
            row.node(top)
    stem = groups[0][1][-1][0]
    for top in tops[1:]:
        g.edge(stem, top, style="invis")
    return g


def to_dot(spec: Spec, highlight=(), compact: bool = False) -> str:
    """The diagram as DOT source text (what `dot -Tpng` reads)."""
    return diagram(spec, highlight, compact).source


def render(spec: Spec, output: str, highlight=(), compact: bool = False) -> list[str]:
    """Write the diagram to `output` (format from its suffix) and the `.dot` beside it.

    Returns the paths written. Raises ResnetError for an unsupported suffix, and
    GraphvizMissing (after writing the `.dot`) when the `dot` binary is not on PATH.
    """
    import graphviz

    stem, suffix = os.path.splitext(output)
    if suffix.lower() not in FORMATS:
        raise ResnetError(f"--output {output}: unsupported diagram format {suffix or '(none)'!r}; "
                          f"use one of {', '.join(FORMATS)}")
    fmt = FORMATS[suffix.lower()]
    dot_path = output if fmt is None else stem + ".dot"
    text = to_dot(spec, highlight, compact)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with open(dot_path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        raise ResnetError(f"cannot write {dot_path}: {e.strerror or e}{where}") from None
    if fmt is None:
        return [dot_path]
    try:
        graphviz.render("dot", fmt, dot_path, outfile=output, quiet=True)
    except graphviz.ExecutableNotFound:
        raise GraphvizMissing(
            f"Graphviz 'dot' not found on PATH: wrote {dot_path} but not {output}; "
            f"{INSTALL_HINT}, then run: dot -T{fmt} {dot_path} -o {output}") from None
    except graphviz.CalledProcessError as e:
        err = (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) \
            else str(e.stderr or "")
        last = err.strip().splitlines()[-1] if err.strip() else f"exit status {e.returncode}"
        raise ResnetError(f"dot could not render {output} from {dot_path}: {last}") from None
    return [dot_path, output]


# ---------------------------------------------------------------- CLI jobs

def _highlight(args) -> list[str]:
    return [n for n in (args.output_layer or "").split(",") if n.strip()]


def diagram_job(args) -> int:
    """`--job=diagram`: render to --output (default resnet_N.png), with the .dot beside it."""
    from .spec import build

    spec = build(args.layer_num, args.variant or "v1")
    output = args.output or f"resnet_{spec.layer_num}.png"
    written = render(spec, output, _highlight(args), args.compact)
    log.info("wrote %s (ResNet-%d%s)", " and ".join(written), spec.layer_num,
             ", compact" if args.compact else "")
    return 0


def layers_job(args) -> int:
    """`--job=layers`: print every layer with its type, shape and parameter counts."""
    from .spec import build

    spec = build(args.layer_num, args.variant or "v1")
    if args.output_layer:  # let a user check names before a long extract run
        spec.check_layers(args.output_layer.split(","))
    print(format_table(spec))
    return 0


def _title(spec) -> str:
    return f"ResNet-{spec.layer_num} " + (
        "(v1 model zoo)" if spec.variant == "v1" else f"({spec.variant})")
