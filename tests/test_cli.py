"""`python -m resnet` end to end, as a user runs it: formats, multi-crop, predict, bad input.

On a ResNet-18 v1 directory: what is tested here does not depend on the depth (ResNet-50's
layer names and sizes through the CLI: test_scripts, test_large_outputs).
"""
import csv
import os
import shutil

import h5py
import numpy as np
import paddle
import pytest
from conftest import EXAMPLES, run_cli, write_jpeg
from reference import rel_err

import resnet
from resnet.models.preprocessing import V1
from resnet.inputs import imaging
from resnet.modelio.classes import class_name, imagenet_classes

NAMES = ["cat.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg"]
LAYERS = "res5_2_branch2b_bn,pool1,output"


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    for n in NAMES:
        shutil.copy(os.path.join(EXAMPLES, n), d / n)
    (d / "test.list").write_text("# four photos\n" + "".join(f"{n} {i}\n" for i, n in enumerate(NAMES)))
    return d


@pytest.fixture(scope="module")
def model18(model_factory):
    return model_factory(18)


@pytest.fixture(scope="module")
def expected(model18):
    """What the network gives for each photo, single and 10-crop, computed in-process."""
    net = resnet.load(model18, 18)
    mean = V1  # v1's preprocessing (a Recipe)
    layers = LAYERS.split(",")
    out = {}
    for multi in (False, True):
        rows = [net.run(imaging.preprocess(os.path.join(EXAMPLES, n), mean, multi), layers)
                for n in NAMES]
        out[multi] = {k: np.stack([r[k].mean(axis=0) for r in rows]) for k in layers}
    return out


def _extract(model, data, out, *extra):
    return run_cli("--job=extract", f"--model={model}", f"--data={data}", f"--output_dir={out}",
                   f"--output_layer={LAYERS}", "--use_gpu=0", "--batch_size=3", *extra)


@pytest.mark.parametrize("fmt", ["hdf5", "pickle", "text"])
def test_extract_each_format(model18, photos, expected, tmp_path, fmt):
    r = _extract(model18, photos / "test.list", tmp_path, f"--format={fmt}")
    assert r.returncode == 0, r.stderr
    first = r.stderr.splitlines()[0]
    assert first == f"resnet: running ResNet-18 on CPU (paddle {paddle.__version__})"
    assert "extracted 4 images" in r.stderr
    feats = resnet.load_features(str(tmp_path))
    assert feats.images == NAMES
    for name, want in expected[False].items():
        assert feats[name].shape == want.shape
        assert feats[name].dtype == np.float32
        assert rel_err(feats[name], want) <= 1e-5, name
    if fmt == "hdf5":
        with h5py.File(tmp_path / "features.h5") as f:
            assert f["labels"][:].tolist() == [0, 1, 2, 3]
            assert f.attrs["count"] == 4 and f.attrs["layer_num"] == 18
    if fmt == "pickle":
        assert sorted(os.listdir(tmp_path)) == ["batch_0", "manifest.json", "progress.json"]
    if fmt == "text":
        lines = (tmp_path / "features.txt").read_text().splitlines()
        assert len(lines) == 4 and all(line.count(";") == 2 for line in lines)
        first_layer = lines[0].split(";")[0].split()
        assert len(first_layer) == 512 * 7 * 7


def test_extract_multi_crop_averages(model18, photos, expected, tmp_path):
    r = _extract(model18, photos / "test.list", tmp_path, "--multi_crop")
    assert r.returncode == 0, r.stderr
    feats = resnet.load_features(str(tmp_path / "features.h5"))
    for name, want in expected[True].items():
        assert rel_err(feats[name], want) <= 1e-5, name
    assert rel_err(feats["pool1"], expected[False]["pool1"]) > 1e-2  # really a different input


def test_predict_lines_and_csv(model18, photos, expected, tmp_path):
    csv_path = tmp_path / "pred.csv"
    r = run_cli("--job=predict", f"--model={model18}", f"--data={photos / 'test.list'}",
                "--use_gpu=0", "--multi_crop", f"--output_file={csv_path}")
    assert r.returncode == 0, r.stderr
    probs = expected[True]["output"]
    labels = [line for line in r.stdout.splitlines() if line.startswith("Label of ")]
    assert labels == [f"Label of {n} is: {int(np.argmax(p))}" for n, p in zip(NAMES, probs)]
    rows = list(csv.reader(open(csv_path)))
    assert rows[0][:2] == ["path", "index_1"] and len(rows) == 5
    for row, p in zip(rows[1:], probs):
        top = np.argsort(-p)[:5]
        assert [int(x) for x in row[1:6]] == top.tolist()
        assert row[6:11] == [class_name(i) for i in top]
        np.testing.assert_allclose([float(x) for x in row[11:16]], p[top], rtol=1e-5)
    assert "accuracy on 4 labelled images" in r.stderr
    second = r.stdout.splitlines()[1]
    idx = int(np.argsort(-probs[0])[0])
    assert second.strip().startswith(f"1. {idx:4d}".strip()) and imagenet_classes()[idx][0] in second


def test_bad_entries_are_skipped_listed_and_counted(model18, photos, expected, tmp_path):
    bad = tmp_path / "in"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.jpg").write_text("not an image")
    lst = tmp_path / "mixed.list"
    lst.write_text(f"{photos / 'cat.jpg'}\n{bad / 'empty.jpg'}\n{photos / 'coffee.jpg'}\n"
                   f"{bad / 'missing.jpg'}\n{bad / 'text.jpg'}\n{photos / 'rocket.jpg'}\n")
    out = tmp_path / "out"
    r = _extract(model18, lst, out)
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr
    for name, reason in (("empty.jpg", "empty file"), ("missing.jpg", "file not found"),
                         ("text.jpg", "not a readable image")):
        assert f"resnet: skipped {bad / name}: {reason}" in r.stderr
    assert "3 image(s) skipped, listed in" in r.stderr
    failed = (out / "failed.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in failed] == [
        str(bad / "empty.jpg"), str(bad / "missing.jpg"), str(bad / "text.jpg")]
    feats = resnet.load_features(str(out))
    assert feats.images == [str(photos / n) for n in ("cat.jpg", "coffee.jpg", "rocket.jpg")]
    want = expected[False]["res5_2_branch2b_bn"][[0, 1, 3]]
    assert rel_err(feats["res5_2_branch2b_bn"], want) <= 1e-5


def test_strict_stops_at_first_bad_image(model18, photos, tmp_path):
    lst = tmp_path / "s.list"
    lst.write_text(f"{photos / 'cat.jpg'}\n{tmp_path / 'missing.jpg'}\n{photos / 'coffee.jpg'}\n")
    r = _extract(model18, lst, tmp_path / "out", "--strict", "--batch_size=1")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        f"resnet: error: {tmp_path / 'missing.jpg'}: file not found (stopped: --strict)")
    assert resnet.load_features(str(tmp_path / "out")).images == [str(photos / "cat.jpg")]


def test_unknown_layer_fails_before_any_work(model18, photos, tmp_path):
    out = tmp_path / "out"
    r = run_cli("--job=extract", f"--model={model18}", f"--data={photos / 'test.list'}",
                f"--output_dir={out}", "--output_layer=res5_2_branch2b_bm,pool1", "--use_gpu=0")
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("resnet: error: unknown output layer 'res5_2_branch2b_bm' (did you "
                           "mean: res5_2_branch2b_bn")
    assert not out.exists()


@pytest.mark.parametrize("flags,message", [
    (["--layer_num=42"], "unsupported layer_num 42: choose one of 50, 101, 152"),
    (["--use_gpu=1"], "paddlepaddle-gpu"),
    (["--mean=/nonexistent/mean.meta"], "/nonexistent/mean.meta: mean file not found"),
    (["--data=/nonexistent.list"], "/nonexistent.list: input list or image not found"),
    (["--model=/nonexistent_model"], "/nonexistent_model: model directory not found"),
])
def test_bad_flags_one_line_errors(model18, photos, tmp_path, flags, message):
    args = {"--model": model18, "--data": str(photos / "test.list"),
            "--output_dir": str(tmp_path / "o")}
    for f in flags:
        args[f.split("=")[0]] = f.split("=", 1)[1]
    if "--use_gpu" not in args:
        args["--use_gpu"] = "0"
    r = run_cli("--job=extract", *[f"{k}={v}" for k, v in args.items()])
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert message in r.stderr.strip().splitlines()[-1]


def test_single_image_and_directory_inputs(model18, photos, tmp_path):
    r = _extract(model18, photos / "cat.jpg", tmp_path / "one", "--format=text")
    assert r.returncode == 0, r.stderr
    assert resnet.load_features(str(tmp_path / "one")).images == [str(photos / "cat.jpg")]
    extra = photos / "sub"
    extra.mkdir(exist_ok=True)
    write_jpeg(extra / "b.jpg")
    write_jpeg(extra / "a.png", seed=1)
    r = _extract(model18, extra, tmp_path / "dir")
    assert r.returncode == 0, r.stderr
    assert resnet.load_features(str(tmp_path / "dir")).images == [
        str(extra / "a.png"), str(extra / "b.jpg")]
