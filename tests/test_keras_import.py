"""--from=keras: Keras applications' ResNets in every file format reproduce Keras' own forward.

The models are built by Keras 3 (jax backend) with seeded random weights, conv biases and BN
statistics (tests/keras_files.py), saved by Keras (.keras, whole-model .h5, .weights.h5) or as
Keras 2 writes them (save_weights .h5, and the older Caffe-named ResNet50 with eps 1e-3), then
converted; Keras runs its own forward on the photos as model.json preprocesses them.
"""
import glob
import json
import os
import zipfile

import h5py
import numpy as np
import pytest
from conftest import EXAMPLES, run_cli
from reference import rel_err
import keras_files as kf  # sets KERAS_BACKEND=jax before Keras is imported

import resnet
from resnet.common.files import sha256_file
from resnet.importers.keras import KerasImporter
from resnet.inputs.imaging import preprocess

pytest.importorskip("jax", reason="jax (Keras' backend in the tests) not installed: "
                              "pip install '.[test]'")
pytest.importorskip("keras", reason="keras not installed: pip install '.[test]'")

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # Keras on numpy 2
              pytest.mark.xdist_group("keras")]  # one worker: Keras' ResNet50 is built once
PHOTOS = sorted(glob.glob(os.path.join(EXAMPLES, "*.jpg")))[:2]
#: Keras layer -> our layer, where both compute the same tensor
CURRENT = {"pool1_pool": "pool1", "conv2_block1_0_bn": "res2_1_branch1_bn",
           "conv3_block1_3_bn": "res3_1_branch2c_bn", "predictions": "output"}
CAFFE_NAMED = {"pool1": "pool1", "bn2a_branch1": "res2_1_branch1_bn",
               "bn5c_branch2c": "res5_3_branch2c_bn", "fc1000": "output"}


def batch():
    return np.concatenate([preprocess(p, KerasImporter.recipe) for p in PHOTOS])


def convert(path, out, *flags):
    r = run_cli("--job=convert", "--from=keras", f"--input={path}", f"--model={out}", *flags)
    assert r.returncode == 0, r.stderr
    return r


def assert_matches(model_dir, want, names):
    net = resnet.load(str(model_dir))
    got = net.run(batch(), list(names.values()))
    for theirs, ours in names.items():
        assert rel_err(got[ours], want[theirs]) <= 1e-4, (ours, rel_err(got[ours], want[theirs]))


@pytest.fixture(scope="module")
def resnet50(tmp_path_factory):
    """Keras' ResNet50 saved four ways, and Keras' outputs on the photos."""
    d = tmp_path_factory.mktemp("keras50")
    model = kf.application(50, seed=50)
    files = {"keras": d / "resnet50.keras", "h5": d / "resnet50.h5",
             "weights.h5": d / "resnet50.weights.h5", "keras2": d / "resnet50_keras2.h5"}
    model.save(files["keras"])
    model.save(files["h5"])
    model.save_weights(files["weights.h5"])
    kf.write_keras2_weights(files["keras2"], kf.keras2_layers(model))
    return files, kf.forward(model, batch(), list(CURRENT))


@pytest.mark.parametrize("fmt", ["keras", "h5", "weights.h5", "keras2"])
def test_resnet50_every_file_format(resnet50, fmt, tmp_path):
    files, want = resnet50
    convert(files[fmt], tmp_path / "m")
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    assert (info["layer_num"], info["variant"]) == (50, "v1-pad1")
    assert info["source"]["format"] == "keras" and info["source"]["names"] == "keras"
    assert_matches(tmp_path / "m", want, CURRENT)


def test_extract_with_the_recipe_of_model_json(resnet50, tmp_path):
    """extract with no preprocessing flags: Keras' caffe mode (BGR minus the ImageNet means,
    resized straight to 224x224), the rows equal Keras' outputs."""
    files, want = resnet50
    convert(files["keras"], tmp_path / "m")
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    assert info["preprocessing"] == {
        "channel_order": "BGR", "scale": 1.0, "mean": [103.939, 116.779, 123.68],
        "std": [1.0, 1.0, 1.0], "resize_short_side": None, "crop": 224,
        # model.json version 2 says the rest of the recipe too
        "interpolation": "area", "resize": "direct", "ten_crop": {"short_side": 256, "crop": 224}}
    assert info["source"]["sha256"] == sha256_file(files["keras"])
    data = tmp_path / "photos.txt"
    data.write_text("".join(f"{p}\n" for p in PHOTOS))
    out = tmp_path / "out"
    r = run_cli("--job=extract", f"--model={tmp_path / 'm'}", f"--data={data}",
                f"--output_dir={out}", "--output_layer=pool1,output", "--use_gpu=0")
    assert r.returncode == 0, r.stderr
    with resnet.load_features(str(out)) as got:
        assert rel_err(np.asarray(got["pool1"]), want["pool1_pool"]) <= 1e-4
        assert rel_err(np.asarray(got["output"]), want["predictions"]) <= 1e-4


def test_keras_before_3_6_names_come_from_the_config(resnet50, tmp_path):
    """Keras < 3.6 wrote no layer name in .weights.h5: a .keras file's config gives them
    (folders conv2d, conv2d_1, ... by class and rank); a bare weights file is refused."""
    files, want = resnet50
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(files["keras"]) as z:
        members = {n: z.read(n) for n in z.namelist()}
    weights = tmp_path / "model.weights.h5"
    weights.write_bytes(members["model.weights.h5"])
    with h5py.File(weights, "r+") as f:
        for group in f["layers"].values():
            if "name" in group["vars"].attrs:
                del group["vars"].attrs["name"]
    members["model.weights.h5"] = weights.read_bytes()
    with zipfile.ZipFile(old, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    convert(old, tmp_path / "m")
    assert_matches(tmp_path / "m", want, CURRENT)

    r = run_cli("--job=convert", "--from=keras", f"--input={weights}",
                f"--model={tmp_path / 'bare'}")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"resnet: error: {weights}: a Keras weights file without layer names (written by "
        "Keras < 3.6): convert the .keras file, which holds them")
    assert not (tmp_path / "bare").exists()


def test_caffe_named_resnet50_eps_1e3(tmp_path):
    """The older keras-applications ResNet50 file: Caffe names, a Keras 2 weights file with
    no config, BatchNorm eps 1e-3 (folded into the variances)."""
    model = kf.caffe_named_resnet50(seed=3)
    want = kf.forward(model, batch(), list(CAFFE_NAMED))
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels.h5"
    kf.write_keras2_weights(path, kf.keras2_layers(model))
    convert(path, tmp_path / "m")
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    assert (info["layer_num"], info["source"]["names"]) == (50, "keras (Caffe names)")
    assert_matches(tmp_path / "m", want, CAFFE_NAMED)


@pytest.mark.parametrize("depth", [101])  # 152: the same names, more blocks
def test_resnet101_152(depth, tmp_path):
    model = kf.application(depth, seed=depth)
    last = 23 if depth == 101 else 36  # stage 4's last block
    names = {"pool1_pool": "pool1", f"conv4_block{last}_out": f"res4_{last}_addto",
             "predictions": "output"}
    want = kf.forward(model, batch(), list(names))
    path = tmp_path / f"resnet{depth}.weights.h5"
    model.save_weights(path)
    convert(path, tmp_path / "m")
    assert json.loads((tmp_path / "m" / "model.json").read_text())["layer_num"] == depth
    assert_matches(tmp_path / "m", want, names)


def test_resnet_v2_is_refused_in_one_line(tmp_path):
    path = tmp_path / "resnet50v2.weights.h5"
    kf.application("50V2", seed=0).save_weights(path)
    r = run_cli("--job=convert", "--from=keras", f"--input={path}", f"--model={tmp_path / 'm'}")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        f"resnet: error: {path}: a Keras ResNet V2 (ResNet50V2/101V2/152V2)")
    assert not (tmp_path / "m").exists()


def test_another_keras_model_is_refused_with_its_names(tmp_path):
    k = kf.keras()
    model = k.Sequential([k.Input((8,)), k.layers.Dense(4, name="dense_a")])
    path = tmp_path / "mlp.keras"
    model.save(path)
    r = run_cli("--job=convert", "--from=keras", f"--input={path}", f"--model={tmp_path / 'm'}")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"resnet: error: {path}: does not fit ResNet-")
    assert "mismatches: " in line and "missing conv1_conv.weight" in line
    assert not (tmp_path / "m").exists()
