"""--from=caffe: He et al.'s Caffe ResNets convert to exact v1 model directories.

The .caffemodel files are written with the caffe.proto schema from known v1 arrays
(tests/caffe_files.py); the converted directory must hold those arrays and run as the
independent v1 reference (tests/reference.py) does on them.
"""
import json

import numpy as np
import pytest
from caffe_files import blob, write_caffemodel
from conftest import run_cli
from reference import Reference, rel_err

import resnet
from resnet.modelio import params
from resnet.modelio.mean import load_mean
from resnet.models import build


@pytest.fixture(scope="module")
def caffe50(tmp_path_factory):
    """A v1 ResNet-50 and the same weights as Caffe's ResNet-50-model.caffemodel (conv1 with
    a bias, BN statistics scaled, BatchNorm + Scale)."""
    d = tmp_path_factory.mktemp("caffe50")
    spec = build(50)
    values = params.random_params(spec, 3)
    params.save_model(str(d / "v1"), spec, values)
    bias = np.random.default_rng(5).normal(0, 0.2, 64)
    write_caffemodel(str(d / "ResNet-50-model.caffemodel"), spec, values, conv1_bias=bias)
    return d, spec, values


def test_resnet50_converts_to_the_exact_v1_model(caffe50, tmp_path):
    d, spec, values = caffe50
    out = tmp_path / "resnet_50"
    r = run_cli("--job=convert", "--from=caffe",
                f"--input={d / 'ResNet-50-model.caffemodel'}", f"--model={out}")
    assert r.returncode == 0, r.stderr
    info = json.loads((out / "model.json").read_text())
    assert (info["layer_num"], info["variant"]) == (50, "v1")
    assert "preprocessing" not in info  # v1's own: BGR minus the mean
    assert info["source"]["format"] == "caffe" and info["source"]["names"] == "caffe"
    got = params.load_model(str(out), spec)
    assert sorted(got) == sorted(values)
    for name, want in values.items():  # the zoo's files, same names; conv1's bias folded
        np.testing.assert_allclose(got[name], want, rtol=2e-6, atol=2e-6, err_msg=name)
    batch = np.random.default_rng(0).normal(0, 50, (2, 3, 224, 224)).astype(np.float32)
    want = Reference(str(d / "v1"), 50).forward(batch)
    net = resnet.load(str(out))
    layers = ["conv1_bn", "res3_4_branch2c_bn", "res5_3_addto", "output"]
    out_ = net.run(batch, layers)
    for name in layers:
        assert rel_err(out_[name], want[name]) <= 1e-4, name


def test_resnet101_block_names_and_bn_eps(tmp_path):
    """101/152 name their long stages res4a, res4b1, ...; a BatchNorm eps other than 1e-5
    is folded into the variance exactly."""
    spec = build(101)
    values = params.random_params(spec, 4)
    path = tmp_path / "ResNet-101-model.caffemodel"
    write_caffemodel(str(path), spec, values, eps=1e-3)
    out = tmp_path / "resnet_101"
    r = run_cli("--job=convert", "--from=caffe", f"--input={path}", f"--model={out}")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "model.json").read_text())["layer_num"] == 101
    got = params.load_model(str(out), spec)
    for name, want in values.items():
        np.testing.assert_allclose(got[name], want, rtol=2e-6, atol=2e-6, err_msg=name)


def test_the_caffe_mean_image_is_a_mean_file(tmp_path):
    mean = np.random.default_rng(1).uniform(90, 130, (3, 224, 224)).astype(np.float32)
    path = tmp_path / "ResNet_mean.binaryproto"
    path.write_bytes(blob(mean[None], legacy=True).SerializeToString())
    np.testing.assert_array_equal(load_mean(str(path)), mean)
    bad = tmp_path / "bad.binaryproto"
    bad.write_bytes(blob(np.zeros((3, 10, 10))).SerializeToString())
    with pytest.raises(resnet.ResnetError, match="mean has 300 values"):
        load_mean(str(bad))


@pytest.mark.parametrize("content, message", [
    (b"\x0aResNet-50 \xa2\x06\xff\xff\xff", "not a Caffe model"),
    (b"hello, not a model at all", "not a Caffe model"),
    (b"\x80\x04\x95 a pickle", "looks like a paddle checkpoint"),
])
def test_malformed_and_foreign_files(tmp_path, content, message):
    path = tmp_path / "x.caffemodel"
    path.write_bytes(content)
    out = tmp_path / "out"
    r = run_cli("--job=convert", "--from=caffe", f"--input={path}", f"--model={out}")
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"resnet: error: {path}: ") and message in last, last
    assert "Traceback" not in r.stderr and not out.exists()
