"""--from=onnx: the ONNX zoo's ResNet v1 files reproduce onnxruntime's own forward.

The files are Gluon's ResNetV1 graph written with the onnx package (tests/onnx_files.py);
onnxruntime runs them on the photos as the converted model's model.json preprocesses them.
"""
import glob
import json
import os

import numpy as np
import pytest
from conftest import EXAMPLES, run_cli
from reference import rel_err

import resnet
from resnet.inputs.imaging import preprocess
from resnet.modelio import modelinfo

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: pip install '.[export]'")
pytest.importorskip("onnx", reason="onnx not installed: pip install '.[export]'")
from onnx_files import gluon_v1  # noqa: E402

PHOTOS = sorted(glob.glob(os.path.join(EXAMPLES, "*.jpg")))


def source_forward(path, batch, outputs):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = dict(zip(outputs, sess.run(outputs, {"data": batch})))
    logits = got["logits"] - got["logits"].max(axis=1, keepdims=True)
    got["output"] = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return got


def matches_source(model, onnx_path, outputs, last):
    """pool1, the last block and the softmax of the converted model equal onnxruntime's on
    two photos preprocessed by the model's model.json recipe."""
    recipe = modelinfo.read(str(model)).preprocessing
    batch = np.concatenate([preprocess(p, recipe) for p in PHOTOS[:2]])
    want = source_forward(onnx_path, batch, outputs)
    got = resnet.load(str(model)).run(batch, ["pool1", last, "output"])
    for ours, theirs in (("pool1", "pool1"), (last, outputs[2]), ("output", "output")):
        assert rel_err(got[ours], want[theirs]) <= 1e-4, ours


def test_resnet18_v1_7_extract_matches_onnxruntime(tmp_path):
    path = tmp_path / "resnet18-v1-7.onnx"
    outputs = gluon_v1(18, path, seed=1)
    model = tmp_path / "onnx18"
    r = run_cli("--job=convert", "--from=onnx", f"--input={path}", f"--model={model}")
    assert r.returncode == 0, r.stderr
    info = json.loads((model / "model.json").read_text())
    assert (info["layer_num"], info["variant"]) == (18, "v1-pad1")
    assert info["source"]["format"] == "onnx" and info["preprocessing"]["channel_order"] == "RGB"
    # extract with no preprocessing flags: model.json's recipe is the source's
    out = tmp_path / "out"
    r = run_cli("--job=extract", f"--model={model}", f"--data={EXAMPLES}", f"--output_dir={out}",
                "--output_layer=pool1,res5_2_addto,output", "--use_gpu=0")
    assert r.returncode == 0, r.stderr
    recipe = modelinfo.read(str(model)).preprocessing
    batch = np.concatenate([preprocess(p, recipe) for p in PHOTOS])
    want = source_forward(path, batch, outputs)
    with resnet.load_features(str(out)) as got:
        assert [os.path.basename(p) for p in got.images] == [os.path.basename(p) for p in PHOTOS]
        for ours, theirs in (("pool1", "pool1"), ("res5_2_addto", outputs[2]),
                             ("output", "output")):
            assert rel_err(np.asarray(got[ours]), want[theirs]) <= 1e-4, ours


def test_resnet50_v1_7_conv_biases_folded(tmp_path):
    """Bottlenecks: stride on the first 1x1, biases on the 1x1 body convs (folded exactly)."""
    path = tmp_path / "resnet50-v1-7.onnx"
    outputs = gluon_v1(50, path, seed=2, prefix="resnetv10_")
    model = tmp_path / "onnx50"
    r = run_cli("--job=convert", "--from=onnx", f"--input={path}", f"--model={model}")
    assert r.returncode == 0, r.stderr
    matches_source(model, path, outputs, "res5_3_addto")


def test_another_onnx_graph_is_refused_with_its_names(tmp_path):
    import onnx

    path = tmp_path / "resnet18-v1-7.onnx"
    gluon_v1(18, path)
    m = onnx.load(str(path))
    m.graph.initializer[5].name = "resnetv17_stage1_something_weight"  # not a Gluon v1 net
    foreign = tmp_path / "other.onnx"
    onnx.save(m, str(foreign))
    out = tmp_path / "out"
    r = run_cli("--job=convert", "--from=onnx", f"--input={foreign}", f"--model={out}")
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"resnet: error: {foreign}: does not fit ResNet-") and \
        "stage1_something.weight" in last, last
    assert "Traceback" not in r.stderr and not out.exists()
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x07\x12\x05mxnet" + b"\xff" * 20)
    r = run_cli("--job=convert", "--from=onnx", f"--input={junk}", f"--model={out}")
    assert r.returncode == 1 and "not an ONNX model" in r.stderr.strip().splitlines()[-1]
    assert not out.exists()


@pytest.mark.parametrize("depth, last", [(18, "res5_2_addto"), (50, "res5_3_addto")])
def test_v2_7_pre_activation_matches_onnxruntime(tmp_path, depth, last):
    """The -v2-7 files: the pre-activation `v2` network, read off the weights."""
    from onnx_files import gluon_v2

    path = tmp_path / f"resnet{depth}-v2-7.onnx"
    outputs = gluon_v2(depth, path, seed=depth)
    model = tmp_path / f"onnx{depth}v2"
    r = run_cli("--job=convert", "--from=onnx", f"--input={path}", f"--model={model}")
    assert r.returncode == 0, r.stderr
    info = json.loads((model / "model.json").read_text())
    assert (info["layer_num"], info["variant"], info["source"]["names"]) == \
        (depth, "v2", "gluon v2")
    matches_source(model, path, outputs, last)
