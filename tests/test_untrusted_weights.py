"""Weights, means and model.json from someone else: nothing outside the named file is read,
nothing non-finite passes as a model, and every malformed file ends as one line naming it,
in bounded memory and time (issue 21: items 1, 2, 8 and the readers of 14).

Checkpoints are written without their frameworks (tests/keras_files.py, onnx_files.py,
mxnet_files.py, caffe_files.py); the readers run in a subprocess under a memory ceiling
(RLIMIT_AS) and a timeout, so a reader that allocates a declared size or loops fails the
test instead of the machine.
"""
import json
import os
import pickle
import re
import shutil
import struct
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest
from conftest import ROOT, run_cli

import caffe_files
import keras_files as kf
import mxnet_files
import onnx_files

from resnet.errors import ResnetError
from resnet.importers.base import convert, read_checkpoint
from resnet.importers.keras import state as keras_state
from resnet.modelio import modelinfo, params
from resnet.modelio.mean import load_mean, write_v1_mean
from resnet.models import build

SECRET = (b"aws_secret_access_key = SECRETSECRETSECRET " * 7)[:256]  # finite as float32
MEMORY_CEILING = 3 << 30
HERE = os.path.dirname(os.path.abspath(__file__))


def one_line_error(r, *parts):
    """The CLI refused in exactly one `resnet: error:` line containing every part."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) >= 1, (r.returncode, r.stderr)
    last = lines[-1]
    assert last.startswith("resnet: error: ") and "Traceback" not in r.stderr, r.stderr
    for part in parts:
        assert str(part) in last, (part, last)
    return last


def refused(call, *parts):
    """`call()` raises a one-line ResnetError containing every part; returns its text."""
    with pytest.raises(ResnetError) as e:
        call()
    text = str(e.value)
    assert "\n" not in text, text
    for part in parts:
        assert str(part) in text, (part, text)
    return text


@pytest.fixture(scope="module")
def v1_18():
    spec = build(18)
    return spec, params.random_params(spec, 7)


# ------------------------------------------------------------------ 1: HDF5 outside the file

def _external_beta(secret):
    """conv1_bn's beta (vars/1 of layers/batch_normalization) kept in `secret`'s bytes."""
    def make(group, name, value):
        group.create_dataset(name, shape=value.shape, dtype="<f4",
                             external=[(str(secret), 0, value.nbytes)])
    return {"conv1_bn/beta": make}


def _keras_file(tmp_path, v1_18, kind, special=None, name="resnet18"):
    spec, values = v1_18
    h5 = kf.write_keras3_weights(tmp_path / f"{name}.weights.h5",
                                 kf.keras_layers_from_v1(spec, values), special)
    if kind == "weights.h5":
        return h5
    out = kf.write_dot_keras(tmp_path / f"{name}.keras", h5)
    os.remove(h5)
    return out


@pytest.mark.parametrize("kind", ["weights.h5", "keras"])
def test_keras_external_storage_is_refused(tmp_path, v1_18, kind):
    """The issue's reproduction: the secret's bytes would land in _conv1_bn.wbias. The same
    file without external storage converts (so the refusal is the external storage's)."""
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    path = _keras_file(tmp_path, v1_18, kind, _external_beta(secret))
    with h5py.File(path if kind == "weights.h5" else
                   zipfile.ZipFile(path).open("model.weights.h5"), "r") as f:  # the real layout
        ds = f["layers/batch_normalization/vars/1"]
        assert ds.external and f["layers/batch_normalization/vars"].attrs["name"] == "conv1_bn"
    out = tmp_path / "out"
    r = run_cli("--job=convert", "--from=keras", f"--input={path}", f"--model={out}")
    one_line_error(r, path, "layers/batch_normalization/vars/1", "external", "refused")
    assert not out.exists() and [p.name for p in tmp_path.iterdir()
                                 if p.name.startswith(".out")] == []
    if kind == "weights.h5":
        clean = _keras_file(tmp_path, v1_18, kind, name="clean")
        r = run_cli("--job=convert", "--from=keras", f"--input={clean}", f"--model={out}")
        assert r.returncode == 0, r.stderr
        assert os.path.getsize(out / "_conv1_bn.wbias") == 16 + 256


def _link_out(kind, tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["data"] = np.frombuffer(SECRET, "<f4")

    def make(group, name, value):
        if kind == "external link":
            group[name] = h5py.ExternalLink(str(other), "/data")
        elif kind == "soft link":
            group[name] = h5py.SoftLink("/layers/batch_normalization/vars/0")
        else:  # a virtual dataset mapping the other file's data
            layout = h5py.VirtualLayout(shape=value.shape, dtype="<f4")
            layout[:] = h5py.VirtualSource(str(other), "data", shape=value.shape)
            group.create_virtual_dataset(name, layout)
    return {"conv1_bn/beta": make}


@pytest.mark.parametrize("link", ["external link", "soft link", "virtual dataset"])
@pytest.mark.parametrize("kind", ["weights.h5", "keras"])
def test_keras_links_and_virtual_datasets_are_refused(tmp_path, v1_18, link, kind):
    path = _keras_file(tmp_path, v1_18, kind, _link_out(link, tmp_path))
    word = {"external link": "external link", "soft link": "soft link",
            "virtual dataset": "virtual dataset"}[link]
    refused(lambda: convert("keras", str(path), str(tmp_path / "out")), path,
            "layers/batch_normalization/vars/1", word)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ 2: ONNX external data

@pytest.fixture(scope="module")
def onnx18(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx18")
    onnx_files.gluon_v1(18, d / "resnet18-v1-7.onnx", seed=3)
    return d / "resnet18-v1-7.onnx"


BETA = "resnetv17_batchnorm0_beta"  # 64 floats: conv1's batch norm beta


def _onnx_in(tmp_path, onnx18, location, data_file=None):
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    path = folder / "m.onnx"
    shutil.copy(onnx18, path)
    onnx_files.externalize(path, BETA, location, data_file)
    return path


def test_onnx_external_data_is_not_read_from_the_working_directory(tmp_path, onnx18):
    """The issue's reproduction: location '.aws/credentials' run from the folder holding it."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_bytes(SECRET)
    path = _onnx_in(tmp_path, onnx18, ".aws/credentials")
    out = tmp_path / "out"
    r = run_cli("--job=convert", "--from=onnx", f"--input={path}", f"--model={out}", cwd=home)
    line = one_line_error(r, path, BETA, ".aws/credentials")
    assert "ValidationError" not in line and "internal error" not in r.stderr
    assert not out.exists()


@pytest.mark.parametrize("case", ["absolute", "dotdot", "symlink out", "symlinked folder"])
def test_onnx_external_data_outside_its_folder_is_refused(tmp_path, onnx18, case):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(SECRET)
    (tmp_path / "model").mkdir()
    location = {"absolute": str(secret), "dotdot": "../secret.bin",
                "symlink out": "link.bin", "symlinked folder": "sub/secret.bin"}[case]
    if case == "symlink out":
        os.symlink(secret, tmp_path / "model" / "link.bin")
    if case == "symlinked folder":
        os.symlink(tmp_path, tmp_path / "model" / "sub")
    path = _onnx_in(tmp_path, onnx18, location)
    refused(lambda: convert("onnx", str(path), str(tmp_path / "out")), path, BETA,
            repr(location), "refused")
    assert not (tmp_path / "out").exists()


def test_onnx_external_data_bounds_are_checked(tmp_path, onnx18):
    data = tmp_path / "model" / "w.bin"
    (tmp_path / "model").mkdir()
    path = _onnx_in(tmp_path, onnx18, "w.bin", data)
    data.write_bytes(data.read_bytes()[:100])  # shorter than offset + length
    refused(lambda: read_checkpoint("onnx", str(path)), path, BETA, "past the end")
    os.remove(data)
    os.mkfifo(data)  # never opened: a FIFO would block
    refused(lambda: read_checkpoint("onnx", str(path)), path, BETA, "not a regular file")


def test_onnx_external_data_in_its_own_folder_converts(tmp_path, onnx18):
    """A legitimate external data file beside the .onnx converts to the same model."""
    path = _onnx_in(tmp_path, onnx18, "weights.bin", tmp_path / "model" / "weights.bin")
    convert("onnx", str(path), str(tmp_path / "ext"))
    convert("onnx", str(onnx18), str(tmp_path / "inline"))
    for name, _ in build(18, "v1-pad1").param_files():
        assert (tmp_path / "ext" / name).read_bytes() == (tmp_path / "inline" / name).read_bytes()


# ------------------------------------------------------------------ 8: non-finite numbers

def _copy_model(model_factory, tmp_path):
    d = tmp_path / "model"
    shutil.copytree(model_factory(18), d)
    return d


@pytest.mark.parametrize("name,value,word", [
    ("_res2_1_branch2a_conv.w0", np.nan, "non-finite"),
    ("_output.wbias", np.inf, "non-finite"),
    ("_conv1_bn.w2", np.nan, "non-finite"),
    ("_res3_1_branch1_bn.w2", -1.0, "variance + eps <= 0"),
])
def test_check_refuses_non_finite_parameters(model_factory, tmp_path, name, value, word):
    d = _copy_model(model_factory, tmp_path)
    spec = build(18)
    arr = params.read_param(str(d / name), dict(spec.param_files())[name]).copy()
    arr.reshape(-1)[5] = value
    params.write_param(str(d / name), arr)
    r = run_cli("--job=check", f"--model={d}", "--layer_num=18")
    one_line_error(r, d / name, word, "index 5")
    with pytest.raises(ResnetError, match=re.escape(word)):  # every job loading a model
        params.load_model(str(d), spec)


@pytest.mark.parametrize("key,value,word", [
    ("std", [0.229, float("nan"), 0.225], "preprocessing.std"),
    ("std", [0.229, 1e-45, 0.225], "preprocessing.std"),  # denormal
    ("std", [0.229, 0.0, 0.225], "preprocessing.std"),
    ("mean", [float("inf"), 0.456, 0.406], "preprocessing.mean"),
    ("mean", [1e39, 0.456, 0.406], "preprocessing.mean"),  # Inf once float32
    ("scale", float("nan"), "preprocessing.scale"),
    ("scale", -1.0, "preprocessing.scale"),
    ("scale", 10 ** 400, "preprocessing.scale"),
    ("resize_short_side", 10 ** 12, "preprocessing.resize_short_side"),
    ("resize_short_side", 0, "preprocessing.resize_short_side"),
])
def test_model_json_recipe_values_must_be_finite_and_positive(tmp_path, key, value, word):
    doc = modelinfo.ModelInfo(18, "v1.5", modelinfo.IMAGENET_RGB).to_json()
    doc["preprocessing"][key] = value
    (tmp_path / "model.json").write_text(json.dumps(doc))  # NaN / Infinity as Python writes
    refused(lambda: modelinfo.read(str(tmp_path)), tmp_path / "model.json", word)


def test_check_refuses_a_nan_model_json(model_factory, tmp_path):
    d = _copy_model(model_factory, tmp_path)
    doc = modelinfo.ModelInfo(18, "v1.5", modelinfo.IMAGENET_RGB).to_json()
    doc["preprocessing"]["std"] = [float("nan")] * 3
    (d / "model.json").write_text(json.dumps(doc))
    one_line_error(run_cli("--job=check", f"--model={d}"), d / "model.json", "std")


def _mean_files(tmp_path, bad):
    mean = np.full((3, 224, 224), 110.0, np.float32)
    mean[1, 7, 9] = bad
    np.save(tmp_path / "mean.npy", mean)
    write_v1_mean(str(tmp_path / "mean.meta"), mean)
    (tmp_path / "mean.binaryproto").write_bytes(
        caffe_files.blob(mean[None], legacy=True).SerializeToString())
    return [tmp_path / n for n in ("mean.npy", "mean.meta", "mean.binaryproto")]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_mean_files_with_non_finite_values_are_refused(tmp_path, bad):
    for path in _mean_files(tmp_path, bad):
        refused(lambda: load_mean(str(path)), path, "non-finite")
    for path in _mean_files(tmp_path, 0.5):
        assert load_mean(str(path))[1, 7, 9] == 0.5  # the same writers, finite: accepted


def test_check_refuses_a_nan_mean(model_factory, tmp_path):
    d = _copy_model(model_factory, tmp_path)
    meta = _mean_files(tmp_path, np.nan)[1]
    one_line_error(run_cli("--job=check", f"--model={d}", f"--mean={meta}"), meta,
                   "non-finite")


def _bn_config(eps):
    return {"class_name": "Functional", "config": {"name": "resnet", "layers": [
        {"class_name": "BatchNormalization", "config": {"name": "conv1_bn", "epsilon": eps}}]}}


@pytest.mark.parametrize("eps,word", [(float("nan"), "epsilon nan"), (-10, "epsilon -10"),
                                      (float("inf"), "epsilon inf"), ("abc", "epsilon 'abc'")])
def test_keras_epsilon_must_be_a_finite_number(tmp_path, v1_18, eps, word):
    h5 = _keras_file(tmp_path, v1_18, "weights.h5")
    path = kf.write_dot_keras(tmp_path / "m.keras", h5, _bn_config(eps))
    refused(lambda: keras_state(str(path)), path, "config.json", "conv1_bn", word)


def test_convert_refuses_nan_weights_naming_the_key(tmp_path, v1_18):
    spec, values = v1_18
    values = dict(values)
    values["_conv1_bn.w0"] = values["_conv1_bn.w0"].copy()
    values["_conv1_bn.w0"][3] = np.nan
    h5 = kf.write_keras3_weights(tmp_path / "nan.weights.h5", kf.keras_layers_from_v1(spec, values))
    out = tmp_path / "out"
    r = run_cli("--job=convert", "--from=keras", f"--input={h5}", f"--model={out}")
    one_line_error(r, h5, "conv1_bn.gamma", "non-finite")
    assert not out.exists()
    values["_conv1_bn.w0"][3] = 1.0
    values["_conv1_bn.w2"] = np.full_like(values["_conv1_bn.w2"], -1.0)
    h5 = kf.write_keras3_weights(tmp_path / "var.weights.h5", kf.keras_layers_from_v1(spec, values))
    refused(lambda: convert("keras", str(h5), str(out)), h5, "conv1_bn.moving_variance",
            "variance + eps <= 0")
    assert not out.exists()


# ------------------------------------------------------------------ 14: bounded readers

#: runs in a subprocess under RLIMIT_AS: calls each [reader, path] of the JSON list in
#: argv[1] in-process and prints one JSON [outcome, text] per case: "ok", "refused" (a
#: ResnetError: its text) or "crash" (any other exception: its type and first line)
RUNNER = r"""
import json, resource, sys, traceback
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from resnet.errors import ResnetError

def reader(kind):
    if kind == "v1param":
        from resnet.modelio.params import read_param
        return read_param
    if kind == "mean":
        from resnet.modelio.mean import load_mean
        return load_mean
    if kind == "model.json":
        import os
        from resnet.modelio.modelinfo import read
        return lambda path: read(os.path.dirname(path))
    from resnet.importers.base import read_checkpoint
    return lambda path: read_checkpoint(kind, path)

out = []
for kind, path in json.load(open(sys.argv[1])):
    print(kind, path, file=sys.stderr, flush=True)  # the last one names a hang
    try:
        reader(kind)(path)
        out.append(["ok", ""])
    except ResnetError as e:
        out.append(["refused", str(e)])
    except BaseException as e:
        out.append(["crash", type(e).__name__ + ": " + (str(e).splitlines() or [""])[0][:300]
                    + " | " + traceback.format_exc().strip().splitlines()[-3][:200]])
print(json.dumps(out))
"""


def run_readers(cases, tmp_path, timeout=120):
    """[(outcome, text)] of each (reader, path), all read in one subprocess under the
    memory ceiling and a timeout."""
    listing = tmp_path / f"cases-{len(list(tmp_path.iterdir()))}.json"
    listing.write_text(json.dumps([[k, str(p)] for k, p in cases]))
    try:
        r = subprocess.run([sys.executable, "-c", RUNNER, str(listing), str(MEMORY_CEILING)],
                           capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
                           env=dict(os.environ, PYTHONPATH=ROOT, OPENBLAS_NUM_THREADS="1"))
    except subprocess.TimeoutExpired as e:
        last = (e.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
        raise AssertionError(f"the readers took over {timeout} s, at {last}") from None
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _mxnet(tmp_path, name, body):
    path = tmp_path / name
    path.write_bytes(struct.pack("<QQ", 0x112, 0) + body)
    return path


def _pickle_global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _pth(path, size, stride, storage_numel=1, data=None, compress=False):
    """A torch.save zip holding one float tensor record {'w': tensor(size, stride)} on one
    storage of `storage_numel` floats (written by hand: protocol-2 opcodes, no torch)."""
    def tup(values):
        return b"(" + b"".join(b"J" + struct.pack("<i", v) if v < 2 ** 31 else
                               b"\x8a\x08" + struct.pack("<q", v) for v in values) + b"t"
    pid = (b"(X\x07\x00\x00\x00storage" + _pickle_global("torch", "FloatStorage")
           + b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpu" + b"\x8a\x08"
           + struct.pack("<q", storage_numel) + b"tQ")
    record = (_pickle_global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid
              + b"K\x00" + tup(size) + tup(stride) + b"\x89"
              + _pickle_global("collections", "OrderedDict") + b")Rt" + b"R")
    pkl = b"\x80\x02}X\x01\x00\x00\x00w" + record + b"s."
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", method) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", data if data is not None else b"\0" * 4 * storage_numel)
    return path


def _bomb(path, member, size):
    """A zip whose `member` inflates to `size` zero bytes (deflated about 1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(member, "w", force_zip64=True) as f:
            chunk = b"\0" * (1 << 24)
            for _ in range(size // len(chunk)):
                f.write(chunk)
    return path


def _small_keras_h5(path, special=None):
    layers = [("conv1_conv", "Conv2D", [np.ones((3, 3, 3, 4), np.float32), np.zeros(4)]),
              ("conv1_bn", "BatchNormalization", [np.ones(4)] * 4),
              ("predictions", "Dense", [np.ones((4, 10)), np.zeros(10)])]
    return kf.write_keras3_weights(path, layers, special)


def _deep(n):
    return "[" * n + "]" * n


def _item14_cases(tmp_path):
    """(reader, path, words its one-line refusal must contain) for each reproduction."""
    t = tmp_path
    cases = [
        ("mxnet", _mxnet(t, "count.params", struct.pack("<QIi", 2 ** 62, 0xF993FAC8, -1)),
         ["count.params"]),
        ("mxnet", _mxnet(t, "ndim.params", struct.pack("<QIi", 1, 0xF993FAC9, 0)
                         + struct.pack("<i", -3)), ["ndim.params", "-3 dimensions"]),
        ("mxnet", _mxnet(t, "dims.params", struct.pack("<QIii", 1, 0xF993FAC9, 0, 2)
                         + struct.pack("<qq", -4, 5) + struct.pack("<iii", 1, 0, 0)),
         ["dims.params", "negative dimension"]),
        ("mxnet", _mxnet(t, "huge.params", struct.pack("<QIii", 1, 0xF993FAC9, 0, 2)
                         + struct.pack("<qq", 2 ** 32, 2 ** 32) + struct.pack("<iii", 1, 0, 0)
                         + b"\0" * 64), ["huge.params", "(4294967296, 4294967296)",
                                          "too large"]),
        ("torchvision", _pth(t / "stride0.pth", (20000, 25000), (0, 0)),
         ["stride0.pth", "more values than its storage"]),
        ("torchvision", _pth(t / "big.pth", (2 ** 20, 2 ** 20), (2 ** 20, 1)),
         ["big.pth", "storage"]),
        ("torchvision", _pth(t / "numel.pth", (4,), (1,), storage_numel=2 ** 40, data=b"\0" * 16),
         ["numel.pth", "archive/data/0"]),
        ("torchvision", _bomb(t / "bomb.pth", "archive/data.pkl", 1 << 28),
         ["bomb.pth", "archive/data.pkl"]),
        ("keras", kf.write_dot_keras(t / "ok.keras", _small_keras_h5(t / "w.h5")), None),
        ("mean", t / "huge.npy", ["huge.npy", "mean has 1099511627776 values"]),
        ("mean", t / "bin8.meta", ["bin8.meta", "1099511627776"]),
        ("mean", t / "abc.meta", ["abc.meta", "data_mean"]),
        ("mean", t / "ragged.meta", ["ragged.meta", "data_mean"]),
        ("keras", t / "declared.weights.h5", ["declared.weights.h5", "vars/0", "MiB"]),
        ("keras", t / "eps.keras", ["eps.keras", "config.json", "epsilon 'abc'"]),
        ("keras", t / "list.keras", ["list.keras", "config.json", "not a Keras model config"]),
        ("keras", t / "noconfig.keras", ["noconfig.keras", "config.json", "layer 0"]),
        ("keras", t / "deep.keras", ["deep.keras", "config.json", "nested"]),
        ("model.json", t / "deep" / "model.json", ["model.json", "nested"]),
        ("caffe", t / "emptyscale.caffemodel", ["emptyscale.caffemodel", "BatchNorm bn_conv1"]),
    ]
    # a .keras whose weights member inflates 1000-fold (to 256 MiB: the ratio is what is
    # refused, so 3 GiB would be refused alike, only slower to build)
    kbomb = t / "kbomb.keras"
    with zipfile.ZipFile(kbomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", json.dumps(_bn_config(1e-3)))
        with z.open("model.weights.h5", "w", force_zip64=True) as f:
            for _ in range(16):
                f.write(b"\0" * (1 << 24))
    cases.append(("keras", kbomb, ["kbomb.keras", "model.weights.h5", "zip bomb"]))
    (t / "huge.npy").write_bytes(
        b"\x93NUMPY\x01\x00v\x00" + b"{'descr': '<f4', 'fortran_order': False, 'shape': "
        b"(1099511627776,), }".ljust(117) + b"\n")
    (t / "bin8.meta").write_bytes(b"\x80\x04}\x8c\tdata_mean\x8e" + struct.pack("<Q", 2 ** 40)
                                  + b"abc")
    (t / "abc.meta").write_bytes(pickle.dumps({"data_mean": "abc"}, protocol=2))
    (t / "ragged.meta").write_bytes(pickle.dumps({"data_mean": [[1, 2], [3]]}, protocol=2))

    def declared(group, name, value):  # 2 GiB declared, nothing written: a tiny file
        group.create_dataset(name, shape=(1 << 29,), dtype="<f4", chunks=(1 << 20,),
                             compression="gzip")
    _small_keras_h5(t / "declared.weights.h5", {"conv1_conv/kernel": declared})
    assert os.path.getsize(t / "declared.weights.h5") < 64 << 10
    h5 = _small_keras_h5(t / "small.weights.h5")
    kf.write_dot_keras(t / "eps.keras", h5, _bn_config("abc"))
    kf.write_dot_keras(t / "list.keras", h5, {"class_name": "Functional", "config": []})
    kf.write_dot_keras(t / "noconfig.keras", h5, {"class_name": "Functional", "config": {
        "layers": [{"class_name": "BatchNormalization", "name": "conv1_bn"}]}})
    kf.write_dot_keras(t / "deep.keras", h5, _deep(100_000))
    (t / "deep").mkdir()
    (t / "deep" / "model.json").write_text('{"layer_num": 50, "x": ' + _deep(100_000) + "}")
    net = caffe_files.MESSAGES["NetParameter"](name="ResNet-50")
    layer = net.layer.add(name="bn_conv1", type="BatchNorm")
    for arr in (np.ones(4), np.ones(4), np.zeros(0)):
        layer.blobs.append(caffe_files.blob(arr))
    (t / "emptyscale.caffemodel").write_bytes(net.SerializeToString())
    return cases


def test_malformed_files_are_refused_in_bounded_memory(tmp_path):
    """Each of issue 21's item-14 reproductions: one line naming the file and the problem,
    read under a 3 GiB address-space ceiling and a timeout."""
    cases = _item14_cases(tmp_path)
    got = run_readers([(k, p) for k, p, _ in cases], tmp_path)
    for (kind, path, words), (outcome, text) in zip(cases, got):
        if words is None:
            assert outcome == "ok", (path, text)
            continue
        assert outcome == "refused", (path, outcome, text)
        assert "\n" not in text and str(path) in text, text
        for word in words:
            assert word in text, (word, text)


# ------------------------------------------------------------------ 14: fuzz every reader

def _valid_files(d):
    """(reader, path) of one small valid file per format each reader takes."""
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    files = []
    params.write_param(str(d / "_conv1_bn.w0"), rng.normal(size=16))
    files.append(("v1param", d / "_conv1_bn.w0"))
    state = {"conv1.weight": rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
             "bn1._mean": np.zeros(4, np.float32), "fc.bias": np.arange(5, dtype=np.int64)}
    (d / "m.pdparams").write_bytes(pickle.dumps(state, protocol=2))
    files.append(("paddle", d / "m.pdparams"))
    for name in ("torch_fixture.pth", "torch_fixture_legacy.pth"):
        shutil.copy(os.path.join(HERE, "data", name), d / name)
        files.append(("torchvision", d / name))
    try:
        from safetensors.numpy import save_file
        save_file({k: v for k, v in state.items()}, str(d / "m.safetensors"))
        files.append(("safetensors", d / "m.safetensors"))
    except ImportError:
        pass
    net = caffe_files.MESSAGES["NetParameter"](name="ResNet-50")
    conv = net.layer.add(name="conv1", type="Convolution")
    conv.blobs.append(caffe_files.blob(rng.normal(size=(4, 3, 3, 3))))
    conv.blobs.append(caffe_files.blob(rng.normal(size=4)))
    bn = net.layer.add(name="bn_conv1", type="BatchNorm")
    for arr in (np.ones(4), np.ones(4), [2.0]):
        bn.blobs.append(caffe_files.blob(np.asarray(arr)))
    bn.batch_norm_param.eps = 1e-3
    scale = net.layer.add(name="scale_conv1", type="Scale")
    scale.blobs.append(caffe_files.blob(np.ones(4)))
    scale.blobs.append(caffe_files.blob(np.zeros(4), legacy=True))
    fc = net.layer.add(name="fc1000", type="InnerProduct")
    fc.blobs.append(caffe_files.blob(rng.normal(size=(10, 4))))
    (d / "m.caffemodel").write_bytes(net.SerializeToString())
    files.append(("caffe", d / "m.caffemodel"))
    inits = [numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32),
                                     "resnetv17_conv0_weight"),
             numpy_helper.from_array(np.arange(4, dtype=np.int64), "shape0"),
             helper.make_tensor("resnetv17_batchnorm0_gamma", onnx.TensorProto.FLOAT, [4],
                                [1.0, 2.0, 3.0, 4.0])]
    graph = helper.make_graph([helper.make_node("Identity", ["data"], ["out"])], "g",
                              [helper.make_tensor_value_info("data", 1, [1])],
                              [helper.make_tensor_value_info("out", 1, [1])], inits)
    model = helper.make_model(graph, producer_name="mxnet")
    model.ir_version = 3
    onnx.save(model, str(d / "m.onnx"))
    files.append(("onnx", d / "m.onnx"))
    mxnet_files.write_params(d / "m.params", {"arg:conv0_weight": rng.normal(size=(4, 3, 1, 1)),
                                              "aux:bn0_moving_var": np.ones(4)})
    files.append(("mxnet", d / "m.params"))
    h5 = _small_keras_h5(d / "m.weights.h5")
    files.append(("keras", h5))
    files.append(("keras", kf.write_dot_keras(d / "m.keras", h5, _bn_config(1e-3))))
    kf.write_keras2_weights(d / "m2.h5", [("conv1_bn", [(f"conv1_bn/{leaf}:0", np.ones(4))
                                                       for leaf in ("gamma", "beta",
                                                                    "moving_mean",
                                                                    "moving_variance")])])
    with h5py.File(d / "m2.h5", "r+") as f:
        f.attrs["model_config"] = json.dumps(_bn_config(1.001e-5))
    files.append(("keras", d / "m2.h5"))
    write_v1_mean(str(d / "mean.meta"), np.array([104.0, 117.0, 124.0]))
    np.save(d / "mean.npy", np.array([104.0, 117.0, 124.0], np.float32))
    (d / "mean.binaryproto").write_bytes(
        caffe_files.blob(np.ones((1, 3, 1, 1)), legacy=True).SerializeToString())
    files += [("mean", d / "mean.meta"), ("mean", d / "mean.npy"),
              ("mean", d / "mean.binaryproto")]
    (d / "mj").mkdir()
    modelinfo.write(str(d / "mj"), modelinfo.ModelInfo(18, "v1.5", modelinfo.IMAGENET_RGB,
                                                       source={"format": "paddle"}))
    files.append(("model.json", d / "mj" / "model.json"))
    return files


#: damaged copies per valid file and kind (bit flips, oversized size fields)
FLIPS = 150
_BIG = [0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 1 << 40, 1 << 62, (1 << 64) - 1]


def _variants(data: bytes, seed: int):
    """Truncated, bit-flipped and size-field-oversized copies of `data`, seeded. Positions
    favour the head and tail, where headers, tables and zip directories live."""
    rng = np.random.default_rng(seed)
    n = len(data)

    def position():
        where = rng.integers(3)
        span = min(n, 4096)
        return int(rng.integers(span)) if where == 0 else \
            n - 1 - int(rng.integers(span)) if where == 1 else int(rng.integers(n))

    for cut in sorted({0, 1, 4, 8, 12, 16, 24, 32, 64, n // 4, n // 2, 3 * n // 4, n - 8,
                       n - 1}):
        if 0 <= cut < n:
            yield f"cut{cut}", data[:cut]
    for k in range(FLIPS):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 5))):
            b[position()] ^= 1 << int(rng.integers(8))
        yield f"flip{k}", bytes(b)
    for k in range(FLIPS):
        b = bytearray(data)
        width = 8 if rng.integers(2) else 4
        at = min(position(), n - width)
        value = _BIG[int(rng.integers(len(_BIG)))] & ((1 << 8 * width) - 1)
        b[at:at + width] = value.to_bytes(width, "little" if rng.integers(4) else "big")
        yield f"size{k}@{at}", bytes(b)


def test_fuzzed_files_are_accepted_or_refused_in_one_line(tmp_path):
    """Every reader, fed truncated / bit-flipped / oversized-size-field variants of a small
    valid file, either accepts one or refuses it with a one-line ResnetError: never another
    exception, never past the memory ceiling or the timeout. The readers run in-process in
    one subprocess per format group."""
    valid = tmp_path / "valid"
    valid.mkdir()
    files = _valid_files(valid)
    got = run_readers(files, tmp_path)
    assert [o for o, _ in got] == ["ok"] * len(files), list(zip(files, got))
    cases = []
    for i, (kind, path) in enumerate(files):
        folder = tmp_path / f"{i}-{kind}"
        folder.mkdir()
        for tag, data in _variants(path.read_bytes(), seed=i):
            sub = folder / tag  # model.json is found by its folder; the others keep their name
            sub.mkdir()
            (sub / path.name).write_bytes(data)
            cases.append((kind, sub / path.name))
    got = run_readers(cases, tmp_path, timeout=300)
    bad = [(str(p), o, t) for (k, p), (o, t) in zip(cases, got)
           if o == "crash" or (o == "refused" and "\n" in t)]
    assert not bad, bad[:10]
    refusals = sum(o == "refused" for o, _ in got)
    assert refusals > len(cases) // 3  # the variants really are damaged
