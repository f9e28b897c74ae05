"""Network diagrams, read from the one network spec.

Diagram: one node per layer, labelled with its name, type and output shape (C x H x W);
edges follow the data flow, so a ResNet `addto` gets two: its shortcut and its branch. The
family groups layers into clusters (a ResNet's stages res2..res5, a VGG's five blocks).
Layers named in `highlight` (`--output_layer`) get a thick red border and a yellow fill, so
a user sees where their features come from.

Compact (`compact=True`, `--compact`): the family folds repeated units into summary nodes
(a ResNet's identity blocks after the second of each stage, e.g. "res4_3 … res4_23 (21
identity blocks)"); a unit holding a highlighted layer always stays expanded, splitting the
run around it. Families with nothing to fold (VGG) draw the same picture either way.

Rendering needs the Graphviz `dot` binary (Debian: `apt-get install graphviz`); the `.dot`
source is always written next to the rendered file. Without `dot` the `.dot` is still written
and `render` raises GraphvizMissing: the CLI prints it as one line and exits 1, because the
picture the user asked for does not exist and scripts must not carry on as if it did.

Nothing here imports Paddle; `graphviz` (the Python package) is imported only when drawing.
"""
from __future__ import annotations

import html
import logging
import os
from resnet.common.files import atomic_path, atomic_write
from resnet.errors import ResnetError
from resnet.introspect.table import shape_text, title
from resnet.models.graph import Spec

#: Output suffixes `render` understands, and the Graphviz format each one asks for.
FORMATS = {".dot": None, ".png": "png", ".svg": "svg", ".pdf": "pdf"}
#: Node attributes that mark a highlighted (`--output_layer`) layer.
HIGHLIGHT = {"color": "#d62728", "penwidth": "3", "fillcolor": "#ffe066"}
INSTALL_HINT = ("install Graphviz (Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew "
                "install graphviz; conda: conda install -c conda-forge graphviz)")

log = logging.getLogger("resnet")


class GraphvizMissing(ResnetError):
    """The `dot` binary is not on PATH; the `.dot` source was written anyway."""


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
    family = spec.family
    folded = family.folds(spec, marked) if compact else {}

    def ident(name):
        fold = folded.get(name)
        return fold.id if fold else name

    # Consecutive layers of one cluster form a group; layers outside every cluster (a
    # ResNet's stem and head) have cluster None.
    groups: list[tuple] = []
    members: dict = {}
    seen = set()
    for node in spec:
        cluster = family.cluster_of(node.name)
        if cluster is not None:
            members.setdefault(cluster, []).append(node.name)
        nid = ident(node.name)
        if nid in seen:
            continue
        seen.add(nid)
        fold = folded.get(node.name)
        if fold:
            item = (nid, _label(fold.id, fold.text, shape_text(spec[fold.last].shape)),
                    {"shape": "box3d", "style": "filled", "fillcolor": "#f3f3f3"})
        else:
            attrs, note = {"fillcolor": node.operation.fill}, ""
            if node.name in marked:
                attrs.update(HIGHLIGHT)
                note = "--output_layer"
            item = (nid, _label(node.name, node.kind, shape_text(node.shape), note=note), attrs)
        if not groups or groups[-1][0] != cluster:
            groups.append((cluster, []))
        groups[-1][1].append(item)

    heading = title(spec) + (", compact" if compact else "")
    g = graphviz.Digraph(family.stem(spec), comment=heading)
    g.attr(label=heading, labelloc="t", fontsize="20", fontname="Helvetica", newrank="true")
    g.attr("node", shape="box", style="rounded,filled", fontname="Helvetica", fontsize="11")
    g.attr("edge", arrowsize="0.6")
    for cluster, items in groups:
        if cluster is None:
            for nid, label, attrs in items:
                g.node(nid, label, **attrs)
            continue
        with g.subgraph(name=f"cluster_{cluster}") as c:
            c.attr(label=family.cluster_label(spec, cluster, members[cluster]),
                   style="rounded,filled", fillcolor="#fafafa", color="#999999",
                   fontname="Helvetica", fontsize="14", labeljust="l")
            for nid, label, attrs in items:
                c.node(nid, label, **attrs)

    # Layout: the clusters stand side by side as columns, not as one very tall strip. Edges
    # into a new cluster do not constrain the ranks, the clusters' first layers share a rank,
    # and invisible edges from the layer before the first cluster order the columns.
    edges = set()
    for node in spec:
        dst, here = ident(node.name), family.cluster_of(node.name)
        for name in node.inputs:
            src = ident(name)
            if src == dst or (src, dst) in edges:
                continue
            edges.add((src, dst))
            before = family.cluster_of(name)
            jump = here is not None and before is not None and before != here
            g.edge(src, dst, **({"constraint": "false", "color": "#555555"} if jump else {}))
    tops = [ident(family.cluster_top(spec, cluster, members[cluster]))
            for cluster, _ in groups if cluster is not None]
    with g.subgraph() as row:
        row.attr(rank="same")
        for top in tops:
            row.node(top)
    first = next(i for i, (cluster, _) in enumerate(groups) if cluster is not None)
    stem = groups[first - 1][1][-1][0] if first else None
    for top in tops[1:] if stem else ():
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
    try:  # written by rename, never through a link someone left at the name
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        atomic_write(dot_path, text.encode("utf-8"), fsync=False)
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        raise ResnetError(f"cannot write {dot_path}: {e.strerror or e}{where}") from None
    if fmt is None:
        return [dot_path]
    try:
        with atomic_path(output, fsync=False) as target:  # dot opens it by name
            graphviz.render("dot", fmt, dot_path, outfile=target, quiet=True)
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
