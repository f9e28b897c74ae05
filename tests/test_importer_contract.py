"""The contract every registered importer keeps, parametrized from the IMPORTERS registry.

For each importer a checkpoint is written in its format from a seeded paddle.vision
ResNet-18 (the paddle.vision weights under that system's names and layouts), converted by
the CLI, and the converted model must reproduce the source network's own forward (paddle.vision
computes exactly what torchvision / timm compute for these weights) within 1e-4; a truncated
file is refused in one line with nothing written. A newly registered importer fails here
until it gets a writer in WRITERS: registering is what puts it under test.
"""
import os

import numpy as np
import paddle
import pytest
from conftest import run_cli
from reference import rel_err
from test_convert import _batch, _paddle_vision, torchvision_state, write_pth

import resnet
from resnet.importers import IMPORTERS

DEPTH = 18


def _write_paddle(state, path):
    paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, path)


def _write_pth(state, path):
    write_pth(path, torchvision_state(state))


def _write_safetensors(state, path):
    pytest.importorskip("safetensors", reason="safetensors not installed: pip install '.[convert]'")
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in torchvision_state(state).items()}, path)


def _write_caffe(state, path):
    """The same weights as a .caffemodel (Caffe's names, BatchNorm + Scale, fc (out, in))."""
    from caffe_files import write_caffemodel

    from resnet.importers.base import STYLES, to_v1
    from resnet.models import build

    spec = build(DEPTH, "v1.5")
    write_caffemodel(path, spec, to_v1(state, spec, STYLES["paddle.vision"]))


def _write_onnx(state, path):
    """The same weights as the ONNX zoo's initializers (Gluon v1 names under a prefix; a
    basic-block v1 network is the v1.5 one)."""
    onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install '.[export]'")
    from onnx import helper, numpy_helper

    from resnet.importers.base import STYLES, mapping, to_v1
    from resnet.models import build

    spec = build(DEPTH, "v1.5")
    values = to_v1(state, spec, STYLES["paddle.vision"])
    inits = [numpy_helper.from_array(np.ascontiguousarray(values[name].T if flip
                                                          else values[name]),
                                     "resnetv17_" + key.replace(".", "_"))
             for name, key, _, flip in mapping(spec, STYLES["gluon (basic blocks)"])]
    onnx.save(helper.make_model(helper.make_graph([], "resnet", [], [], inits)), path)


def _write_mxnet(state, path):
    """The same weights as a Gluon model-zoo .params file (names without the prefix)."""
    from mxnet_files import write_params

    from resnet.importers.base import STYLES, mapping, to_v1
    from resnet.models import build

    spec = build(DEPTH, "v1.5")
    values = to_v1(state, spec, STYLES["paddle.vision"])
    write_params(path, {key.replace(".", "_"): values[name].T if flip else values[name]
                        for name, key, _, flip in mapping(spec, STYLES["gluon (basic blocks)"])})


def _write_keras(state, path):
    """The same weights as a Keras 2 `save_weights` .h5 (Keras' names; the basic-block layers
    named as Keras names its bottleneck ones), with a bias on every conv and the eps of
    Keras' BatchNorm (1.001e-5) that the importer folds back out."""
    from keras_files import write_keras2_weights

    from resnet.importers.base import STYLES, mapping, to_v1
    from resnet.importers.keras import EPS
    from resnet.models import build

    spec = build(DEPTH, "v1.5")
    values = to_v1(state, spec, STYLES["paddle.vision"])
    rng = np.random.default_rng(0)
    layers, biases = {}, {}
    for name, key, _, flip in mapping(spec, STYLES["keras"]):
        layer, leaf = key.rsplit(".", 1)
        value = values[name].T if flip else values[name]
        if leaf == "weight" and value.ndim == 4:  # (out, in, kh, kw) -> (kh, kw, in, out)
            bias = rng.normal(0, 0.1, value.shape[0]).astype(np.float32)
            biases[layer[:-len("conv")] + "bn"] = bias  # the importer folds it back out
            layers[layer] = [("kernel", value.transpose(2, 3, 1, 0)), ("bias", bias)]
            continue
        if leaf == "moving_mean":
            value = value + biases[layer]
        elif leaf == "moving_variance":
            value = value - np.float32(EPS - 1e-5)
        layers.setdefault(layer, []).append(("kernel" if leaf == "weight" else leaf, value))
    order = ("kernel", "bias", "gamma", "beta", "moving_mean", "moving_variance")  # Keras'
    write_keras2_weights(path, [(layer, [(f"{layer}/{leaf}:0", v) for leaf, v in
                                         sorted(weights, key=lambda w: order.index(w[0]))])
                                for layer, weights in layers.items()])


#: importer name -> (file name, writer(paddle.vision state, path), extra convert flags).
#: Caffe's own topology is v1; the contract converts it as v1.5 so that paddle.vision's
#: forward of the same weights is the reference (tests/test_caffe.py checks v1 itself).
WRITERS = {
    "paddle": ("resnet18.pdparams", _write_paddle, []),
    "torchvision": ("resnet18.pth", _write_pth, []),
    "safetensors": ("model.safetensors", _write_safetensors, []),
    "caffe": ("resnet18.caffemodel", _write_caffe, ["--variant=v1.5"]),
    "onnx": ("resnet18-v1-7.onnx", _write_onnx, ["--variant=v1.5"]),
    "mxnet": ("resnet18_v1.params", _write_mxnet, ["--variant=v1.5"]),
    "keras": ("resnet18.h5", _write_keras, ["--variant=v1.5"]),
}


@pytest.fixture(scope="module")
def source():
    """The source network, its state and its own forward on two preprocessed photos."""
    model = _paddle_vision(DEPTH)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    batch = _batch()
    with paddle.no_grad():
        probs = paddle.nn.functional.softmax(model(paddle.to_tensor(batch)), axis=-1).numpy()
    return state, batch, probs


@pytest.mark.parametrize("name", IMPORTERS.names())
def test_importer_contract(name, source, tmp_path):
    assert name in WRITERS, f"importer {name!r} has no checkpoint writer in WRITERS"
    state, batch, want = source
    filename, write, flags = WRITERS[name]
    path = str(tmp_path / filename)
    write(state, path)
    out = tmp_path / "converted"
    r = run_cli("--job=convert", f"--from={name}", f"--input={path}", f"--model={out}", *flags)
    assert r.returncode == 0, r.stderr
    net = resnet.load(str(out))
    assert (net.spec.layer_num, net.spec.variant) == (DEPTH, "v1.5")  # read off the checkpoint
    got = net.run(batch, ["output"])["output"]
    assert rel_err(got, want) <= 1e-4

    cut = tmp_path / f"cut_{filename}"
    with open(path, "rb") as f:
        data = f.read()
    cut.write_bytes(data[:len(data) // 2])
    bad_out = tmp_path / "bad"
    r = run_cli("--job=convert", f"--from={name}", f"--input={cut}", f"--model={bad_out}",
                *flags)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith(f"resnet: error: {cut}: ") and "Traceback" not in r.stderr
    assert not bad_out.exists()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".bad")]  # no temp left


def test_transposed_equals_numpy_across_tile_edges():
    """The tiled transpose the importers use on fc weights: numpy's own result, bit for bit,
    for shapes that do and do not fill whole tiles, converted to float32; 2-D only."""
    from resnet.common.arrays import transposed

    rng = np.random.default_rng(0)
    for shape in ((1, 1), (3, 1030), (1024, 512), (513, 2049)):
        a = rng.standard_normal(shape)  # float64 in, float32 out
        got = transposed(a)
        assert got.flags.c_contiguous and got.dtype == np.float32
        assert np.array_equal(got, a.astype(np.float32).T)
    with pytest.raises(ValueError, match="2-D"):
        transposed(np.zeros((2, 3, 4)))
