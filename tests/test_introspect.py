"""Diagrams and the layer listing: one node per layer, the data flow, stages, highlights, compact
mode, rendering with and without Graphviz, and parameter totals equal to the written files."""
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from conftest import ROOT, run_cli

import resnet as introspect  # to_dot, render, layer_table, param_counts
from resnet.introspect.diagram import HIGHLIGHT
from resnet.errors import ResnetError
from resnet.models import build

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz 'dot' not on PATH (apt-get install graphviz)")

_ID = r'(\w+|"(?:[^"\\]|\\.)*")'
_NODE = re.compile(rf"^\s*{_ID} \[(.*)\]$", re.M)
_EDGE = re.compile(rf"^\s*{_ID} -> {_ID}(?: \[(.*)\])?$", re.M)


def _unquote(ident):
    return ident[1:-1] if ident.startswith('"') else ident


def parse(text):
    """({node id: attribute text}, [(tail, head)] visible edges) from DOT text; ids once each."""
    nodes = {}
    for ident, attrs in _NODE.findall(text):
        if ident in ("graph", "node", "edge"):
            continue
        name = _unquote(ident)
        assert name not in nodes, f"node {name} declared twice"
        nodes[name] = attrs
    edges = [(_unquote(a), _unquote(b)) for a, b, attrs in _EDGE.findall(text)
             if "invis" not in attrs]
    return nodes, edges


def incoming(edges, name):
    return [a for a, b in edges if b == name]


@pytest.mark.parametrize("depth", [50, 101, 152])
def test_one_node_per_layer_and_edges_follow_the_data_flow(depth):
    spec = build(depth)
    nodes, edges = parse(introspect.to_dot(spec))
    assert list(nodes) == spec.names  # exactly one node per layer, in network order
    assert sorted(edges) == sorted((src, n.name) for n in spec for src in n.inputs)
    addtos = [n for n in spec if n.op == "addto"]
    assert len(addtos) == {50: 16, 101: 33, 152: 50}[depth]
    for n in addtos:  # the shortcut and branch2c_bn
        assert sorted(incoming(edges, n.name)) == sorted(n.inputs)
        assert len(incoming(edges, n.name)) == 2


def test_labels_show_name_type_and_shape_and_stages_are_clusters():
    spec = build(50)
    text = introspect.to_dot(spec)
    nodes, _ = parse(text)
    assert "conv 7x7/2" in nodes["conv1_conv"] and "64x112x112" in nodes["conv1_conv"]
    assert "batch norm + relu" in nodes["res2_1_branch2a_bn"]
    assert "addto" in nodes["res3_2_addto"] and "512x28x28" in nodes["res3_2_addto"]
    assert "fc" in nodes["output"] and "max pool 3x3/2" in nodes["pool1"]
    clusters = dict(re.findall(r"subgraph (cluster_res\d) \{(.*?)\n\t\}", text, re.S))
    assert sorted(clusters) == [f"cluster_res{k}" for k in (2, 3, 4, 5)]
    for name in spec.names:
        home = [c for c, body in clusters.items() if re.search(rf"^\s*{name} \[", body, re.M)]
        assert home == ([f"cluster_{name[:4]}"] if name.startswith("res") else []), name


def test_highlighted_layers_are_marked():
    spec = build(50)
    chosen = ["res5_3_branch2c_conv", "res5_3_branch2c_bn", "pool1"]
    nodes, _ = parse(introspect.to_dot(spec, highlight=chosen))
    marked = {n for n, attrs in nodes.items()
              if all(f"{k}={v}" in attrs or f'{k}="{v}"' in attrs
                     for k, v in HIGHLIGHT.items())}
    assert marked == set(chosen)
    assert all("--output_layer" in nodes[n] for n in chosen)


def test_unknown_highlight_is_a_user_error_with_close_matches():
    with pytest.raises(ResnetError, match="did you mean: res5_3_branch2c_bn"):
        introspect.to_dot(build(50), highlight=["res5_3_branch2c_bnn"])


def test_compact_152_is_small_and_keeps_highlighted_blocks():
    spec = build(152)
    full, _ = parse(introspect.to_dot(spec))
    chosen = ["res4_20_branch2b_bn", "res3_2_addto"]
    nodes, edges = parse(introspect.to_dot(spec, highlight=chosen, compact=True))
    assert len(nodes) < len(full) / 4  # 364 -> about 80
    for name in chosen:
        assert HIGHLIGHT["fillcolor"] in nodes[name]
    # res4_20 stays expanded and splits the run of identity blocks around it
    assert {"res4_3 … res4_19", "res4_21 … res4_36", "res3_3 … res3_8"} <= set(nodes)
    assert "17 identity blocks" in nodes["res4_3 … res4_19"]
    assert all(n in nodes for n in spec.names if n.startswith("res4_20_"))
    assert not any(n.startswith(("res4_3_", "res4_36_")) for n in nodes)
    for name in nodes:  # every drawn join still shows both of its inputs
        if name.endswith("_addto"):
            assert len(incoming(edges, name)) == 2, name
    # the summary stands in for the folded blocks in the data flow, shortcut included
    assert sorted(incoming(edges, "res4_20_addto")) == ["res4_20_branch2c_bn", "res4_3 … res4_19"]
    assert incoming(edges, "res4_21 … res4_36") == ["res4_20_addto"]
    assert incoming(edges, "res5_1_branch1_conv") == ["res4_21 … res4_36"]


def test_compact_summaries_cover_every_block_once():
    spec = build(101)
    nodes, edges = parse(introspect.to_dot(spec, compact=True))
    assert "21 identity blocks" in nodes["res4_3 … res4_23"]
    blocks = {m.group(1) for m in map(re.compile(r"(res\d_\d+)_").match, nodes) if m}
    counts = [int(m) for m in re.findall(r"(\d+) identity blocks?", " ".join(nodes.values()))]
    assert len(blocks) + sum(counts) == sum((3, 4, 23, 3))
    assert len(edges) == len(set(edges))


def test_layer_table_and_param_counts():
    spec = build(50)
    rows = introspect.layer_table(spec)
    assert [r.name for r in rows] == spec.names
    assert rows[1] == ("conv1_conv", "conv 7x7/2", "64x112x112", 64 * 3 * 7 * 7, 0)
    assert rows[2].params == 128 and rows[2].moving_stats == 128  # gamma+beta, mean+var
    counts = introspect.param_counts(spec)
    assert (counts.learnable, counts.moving_stats, counts.total) == (25_557_032, 53_120,
                                                                   25_610_152)
    assert counts.files == len(spec.param_files())


def _file_elements(model_dir):
    files = [f for f in os.listdir(model_dir) if f.startswith("_")]
    return len(files), sum((os.path.getsize(os.path.join(model_dir, f)) - 16) // 4 for f in files)


def _totals(stdout):
    found = dict(re.findall(r"^(learnable parameters|batch norm moving statistics|total in the "
                            r"\d+ parameter files)[^:]*:\s+([\d,]+)$", stdout, re.M))
    return {k.split()[0]: int(v.replace(",", "")) for k, v in found.items()}


def test_layers_job_totals_equal_the_written_parameter_files(model50):
    r = run_cli("--job=layers", "--layer_num=50")
    assert r.returncode == 0, r.stderr
    totals = _totals(r.stdout)
    n_files, elements = _file_elements(model50)
    assert totals == {"learnable": 25_557_032, "batch": 53_120, "total": elements}
    assert f"total in the {n_files} parameter files" in r.stdout
    assert len([ln for ln in r.stdout.splitlines() if re.match(r"res\d_\d+_", ln)]) == 120


def test_layers_job_rejects_unknown_output_layer_in_one_line():
    r = run_cli("--job=layers", "--output_layer=res5_3_bn")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().startswith("resnet: error: unknown output layer 'res5_3_bn'")


@needs_dot
def test_render_png_svg_pdf_with_dot_beside(tmp_path):
    spec = build(152)
    png = tmp_path / "r152.png"
    assert introspect.render(spec, str(png), highlight=["res4_20_addto"], compact=True) == \
        [str(tmp_path / "r152.dot"), str(png)]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "res4_20_addto" in (tmp_path / "r152.dot").read_text(encoding="utf-8")
    svg = tmp_path / "sub" / "r50.svg"  # missing folders are made
    introspect.render(build(50), str(svg))
    assert ET.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    pdf = tmp_path / "r50.pdf"
    introspect.render(build(50), str(pdf), compact=True)
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_render_dot_needs_no_graphviz_and_bad_suffix_is_refused(tmp_path):
    out = tmp_path / "net.dot"
    assert introspect.render(build(50), str(out)) == [str(out)]
    assert out.read_text(encoding="utf-8").lstrip().startswith("// ResNet-50")
    with pytest.raises(ResnetError, match="unsupported diagram format '.jpg'"):
        introspect.render(build(50), str(tmp_path / "net.jpg"))


def _path_without_dot(tmp_path):
    """A PATH like this machine's, but without Graphviz: every other command is still there."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep) + [os.path.dirname(sys.executable)]:
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            src, dst = os.path.join(folder, name), fake / name
            if name != "dot" and not dst.exists() and os.access(src, os.X_OK):
                dst.symlink_to(src)
    assert shutil.which("dot", path=str(fake)) is None
    return str(fake)


def test_cli_without_dot_writes_the_dot_file_and_says_how_to_install(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    r = run_cli("--job=diagram", "--output=net.png", cwd=work,
                env={"PATH": _path_without_dot(tmp_path)})
    assert r.returncode == 1  # documented in resnet.introspect: the PNG asked for is missing
    assert "digraph resnet_50" in (work / "net.dot").read_text(encoding="utf-8")
    assert not (work / "net.png").exists()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "'dot' not found" in lines[0] and "apt-get install graphviz" in lines[0]
    assert "wrote net.dot" in lines[0]


@needs_dot
def test_visualize_sh_defaults_to_resnet_50_dot_and_png(tmp_path):
    r = subprocess.run([os.path.join(ROOT, "visualize.sh"), "--output_layer=res5_3_addto"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHON=sys.executable))
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["resnet_50.dot", "resnet_50.png"]
    assert (tmp_path / "resnet_50.png").read_bytes()[:4] == b"\x89PNG"


def test_import_resnet_stays_light():
    code = ("import sys, resnet; resnet.to_dot; resnet.param_counts(resnet.build(50)); "
            "print(sorted(m for m in ('paddle', 'graphviz') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
