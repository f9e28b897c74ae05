"""--from=mxnet: Gluon zoo and symbolic-zoo `.params` files reproduce their networks.

The weights are those of the ONNX zoo-style graphs of tests/onnx_files.py (Gluon's ResNetV1 /
V2, run by onnxruntime as the source's forward), written again as MXNet `.params` files under
each naming scheme: Gluon's own (with and without the instance prefix) and the symbolic
zoo's (arg:/aux:, BatchNorm eps 2e-5, bn_data with fix_gamma).
"""
import json
import re

import numpy as np
import pytest
from conftest import run_cli
from mxnet_files import write_params

pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install '.[export]'")
onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install '.[export]'")
from onnx import numpy_helper  # noqa: E402
from onnx_files import gluon_v1, gluon_v2  # noqa: E402
from test_onnx_import import matches_source as check  # noqa: E402


def initializers(path):
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


@pytest.mark.parametrize("build, depth, prefixed, variant", [
    (gluon_v1, 50, False, "v1-pad1"), (gluon_v2, 18, True, "v2")])
def test_gluon_zoo_params(tmp_path, build, depth, prefixed, variant):
    onnx_path = tmp_path / "source.onnx"
    outputs = build(depth, onnx_path, seed=depth)
    names = {k if prefixed else re.sub(r"^resnetv\d+_", "", k): v
             for k, v in initializers(onnx_path).items()}
    params = tmp_path / f"resnet{depth}_{variant}.params"
    write_params(params, names)
    model = tmp_path / "converted"
    r = run_cli("--job=convert", "--from=mxnet", f"--input={params}", f"--model={model}")
    assert r.returncode == 0, r.stderr
    info = json.loads((model / "model.json").read_text())
    assert (info["layer_num"], info["variant"]) == (depth, variant)
    check(model, onnx_path, outputs, "res5_3_addto" if depth == 50 else "res5_2_addto")


def structural(gluon: dict, depth: int, version: int) -> dict:
    """Gluon's prefix-free names turned into the attribute paths of save_parameters, written
    out from model_zoo/vision/resnet.py's creation order: each stage counts its convs and
    batch norms; a v1 block makes body (conv, BN, ReLU) x 2 or 3 then downsample (conv, BN),
    a v2 block bn1, conv1, bn2, conv2[, bn3, conv3] then a downsample conv."""
    basic = depth < 50
    blocks = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}[depth]
    stem = ({"conv0": "features.0", "batchnorm0": "features.1"} if version == 1 else
            {"batchnorm0": "features.0", "conv0": "features.1", "batchnorm1": "features.2",
             "batchnorm2": "features.9"})
    names = {**stem, "dense0": "output"}
    for s, count in enumerate(blocks, 1):
        convs, bns = [], []
        for j in range(count):
            where = f"features.{s + (3 if version == 1 else 4)}.{j}"
            down = j == 0 and (not basic or s > 1)
            for i in range(2 if basic else 3):
                if version == 1:
                    convs.append(f"{where}.body.{3 * i}")
                    bns.append(f"{where}.body.{3 * i + 1}")
                else:
                    bns.append(f"{where}.bn{i + 1}")
                    convs.append(f"{where}.conv{i + 1}")
            if down:
                convs.append(f"{where}.downsample" + (".0" if version == 1 else ""))
                if version == 1:
                    bns.append(f"{where}.downsample.1")
        names.update({f"stage{s}_conv{k}": v for k, v in enumerate(convs)})
        names.update({f"stage{s}_batchnorm{k}": v for k, v in enumerate(bns)})
    out = {}
    for key, value in gluon.items():
        module, leaf = re.match(r"^(.*?(?:conv|batchnorm|dense)\d+)_(.*)$", key).groups()
        out[f"{names[module]}.{leaf}"] = value
    return out


@pytest.mark.parametrize("build, depth, version", [(gluon_v1, 50, 1), (gluon_v2, 18, 2)])
def test_gluon_structural_names(tmp_path, build, depth, version):
    """save_parameters files: features.4.0.body.0.weight, ... (v1 biases on body.0 / body.6)."""
    onnx_path = tmp_path / "source.onnx"
    outputs = build(depth, onnx_path, seed=depth + 1)
    gluon = {re.sub(r"^resnetv\d+_", "", k): v for k, v in initializers(onnx_path).items()}
    params = tmp_path / f"resnet{depth}_v{version}.params"
    write_params(params, structural(gluon, depth, version))
    model = tmp_path / "converted"
    r = run_cli("--job=convert", "--from=mxnet", f"--input={params}", f"--model={model}")
    assert r.returncode == 0, r.stderr
    info = json.loads((model / "model.json").read_text())
    assert (info["layer_num"], info["source"]["names"]) == (
        depth, "gluon structural" if version == 1 else "gluon v2 structural")
    check(model, onnx_path, outputs, "res5_3_addto" if depth == 50 else "res5_2_addto")


def test_symbolic_zoo_params(tmp_path):
    """resnet-50-0000.params: arg:/aux: names, eps 2e-5, bn_data's stored gamma ignored."""
    import resnet.importers.mxnet  # noqa: F401 - registers the gluon and symbolic styles
    from resnet.importers.base import STYLES, mapping
    from resnet.models import build as build_spec

    onnx_path = tmp_path / "source.onnx"
    outputs = gluon_v2(50, onnx_path, seed=7)
    gluon = {re.sub(r"^resnetv\d+_", "", k): v for k, v in initializers(onnx_path).items()}
    spec = build_spec(50, "v2")
    by_node = {name: key for name, key, _, _ in mapping(spec, STYLES["gluon v2"])}
    sym_of = {name: key for name, key, _, _ in mapping(spec, STYLES["mxnet symbolic"])}
    arrays = {}
    for name, gkey in by_node.items():
        value = gluon[gkey.replace(".", "_")]
        skey = sym_of[name]
        module, leaf = skey.rsplit(".", 1)
        if leaf == "running_var":
            value = value - np.float32(1e-5)  # stored for eps 2e-5: same var + eps
        if module == "bn_data" and leaf == "gamma":
            value = np.full_like(value, 7.0)  # fix_gamma: MXNet ignores it
        kind = "aux" if leaf.startswith("running_") else "arg"
        arrays[f"{kind}:{module}_{leaf.replace('running_', 'moving_')}"] = value
    params = tmp_path / "resnet-50-0000.params"
    write_params(params, arrays)
    model = tmp_path / "converted"
    r = run_cli("--job=convert", "--from=mxnet", f"--input={params}", f"--model={model}")
    assert r.returncode == 0, r.stderr
    info = json.loads((model / "model.json").read_text())
    assert (info["variant"], info["source"]["names"]) == ("v2", "mxnet symbolic")
    pre = info["preprocessing"]  # raw RGB 0-255: bn_data normalizes
    assert (pre["channel_order"], pre["scale"], pre["mean"], pre["std"]) == \
        ("RGB", 1.0, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
    check(model, onnx_path, outputs, "res5_3_addto")


def test_bad_params_files(tmp_path):
    cut = tmp_path / "cut.params"
    write_params(cut, {"stage1_conv0_weight": np.zeros((64, 64, 1, 1))})
    cut.write_bytes(cut.read_bytes()[:60])
    junk = tmp_path / "junk.params"
    junk.write_bytes(b"not an mxnet file at all, really")
    for path, words in ((cut, "truncated MXNet params file"), (junk, "not an MXNet params")):
        out = tmp_path / "out"
        r = run_cli("--job=convert", "--from=mxnet", f"--input={path}", f"--model={out}")
        assert r.returncode == 1
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith(f"resnet: error: {path}: ") and words in last, last
        assert not out.exists() and "Traceback" not in r.stderr
