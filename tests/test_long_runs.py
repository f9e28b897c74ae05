"""Never lose a dump: kill and resume, shards and merge, overwrite protection, the bad corpus."""
import json
import os
import random
import signal
import subprocess
import sys

import h5py
import launch
import numpy as np
import pytest
from conftest import ROOT, run_cli, write_jpeg
from runs import cmd as _cmd, interrupt as _interrupt

import resnet

# one worker: its uninterrupted reference run is made once, not once per worker
pytestmark = pytest.mark.xdist_group("long_runs")

BAD = os.path.join(ROOT, "tests", "data", "bad")
#: Every corpus file and what happens to it: "ok" = processed, else the reason in failed.txt.
CORPUS = {
    "zero_bytes.jpg": "empty file",
    "truncated.jpg": "truncated JPEG (no end-of-image marker)",
    "text_file.jpg": "not a readable image",
    "cmyk.jpg": "ok",
    "sixteen_bit.png": "ok",
    "rgba.png": "ok",
    "greyscale.png": "ok",
    "one_pixel.png": "ok",
    "decompression_bomb.png": "20000x20000 pixels is over the limit of 100,000,000",
    "directory.jpg": "is a directory, not an image",
    "name with spaces ünïcödé.jpg": "ok",
    "does_not_exist.jpg": "file not found",
}


def _h5(path):
    with h5py.File(path) as f:
        return {k: f[k][:] for k in f}


def _assert_same_h5(a, b):
    da, db = _h5(a), _h5(b)
    assert sorted(da) == sorted(db)
    for k in da:
        assert da[k].dtype == db[k].dtype and da[k].shape == db[k].shape, k
        if da[k].dtype == object:  # strings: compare values, not object pointers
            assert da[k].tolist() == db[k].tolist(), k
        else:
            assert da[k].tobytes() == db[k].tobytes(), k


@pytest.fixture(scope="module")
def model18(model_factory):
    """ResNet-18 for the runs: the journal, resume, shards and merge do not depend on the
    depth, and the smaller network leaves the suite's time to them."""
    return model_factory(18)


@pytest.fixture(scope="module")
def full_run(model18, long_list, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    r = launch.run(_cmd(model18, long_list, out), capture_output=True, text=True,
                   env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 3, r.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sig,seed", [(signal.SIGKILL, 1), (signal.SIGINT, 3)])
def test_interrupted_run_resumes_to_identical_output(model18, long_list, full_run, tmp_path,
                                                     sig, seed):
    rng = random.Random(seed)
    out = tmp_path / "out"
    cmd = _cmd(model18, long_list, out)
    rc, err = _interrupt(cmd, sig, rng.uniform(0.0, 2.5))
    if sig == signal.SIGINT:
        assert rc == 130 and "--resume" in err and "Traceback" not in err
    with h5py.File(out / "features.h5") as f:  # readable after the interruption
        assert f["images"].shape[0] >= 2
    again = launch.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert again.returncode == 1 and "pass --resume" in again.stderr
    # a second interruption during the resumed run, then a final resume
    rc, err = _interrupt(cmd + ["--resume"], signal.SIGKILL, rng.uniform(0.0, 1.0))
    done = launch.run(cmd + ["--resume"], capture_output=True, text=True,
                      env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 3, done.stderr
    assert "resuming" in done.stderr
    _assert_same_h5(out / "features.h5", full_run / "features.h5")
    assert (out / "failed.txt").read_text() == (full_run / "failed.txt").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["rows"] == 20 and manifest["failed"] == 2
    assert manifest["resumed"] >= 1


def test_overwrite_and_changed_settings(model18, long_list, full_run, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    for name in os.listdir(full_run):
        (out / name).write_bytes((full_run / name).read_bytes())
    r = run_cli(*_cmd(model18, long_list, out, "--resume", "--output_layer=pool1")[3:])
    assert r.returncode == 1
    assert "cannot resume: the earlier run used different layers" in r.stderr
    r = run_cli(*_cmd(model18, long_list, out, "--overwrite", "--output_layer=pool1")[3:])
    assert r.returncode == 3, r.stderr
    assert list(resnet.load_features(str(out)).layers) == ["pool1"]


def test_two_concurrent_shards_merge_to_the_full_run(model18, long_list, full_run, tmp_path):
    out = tmp_path / "sharded"
    procs = [launch.popen(_cmd(model18, long_list, out, f"--shard={i}/2"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT)) for i in (1, 2)]
    codes = [p.wait(timeout=300) for p in procs]
    assert codes == [3, 3]  # each shard has one of the two bad entries
    assert sorted(os.listdir(out)) == ["shard-1-of-2", "shard-2-of-2"]
    r = run_cli("--job=merge", f"--output_dir={out}")
    assert r.returncode == 0, r.stderr
    assert "merged 2 shards (20 images)" in r.stderr
    _assert_same_h5(out / "features.h5", full_run / "features.h5")
    assert (out / "failed.txt").read_text() == (full_run / "failed.txt").read_text()
    r = run_cli("--job=merge", f"--output_dir={out}")
    assert r.returncode == 1 and "pass --resume to continue that run or --overwrite" in r.stderr


def test_merge_refuses_incomplete_shards(model18, long_list, tmp_path):
    out = tmp_path / "s"
    r = run_cli(*_cmd(model18, long_list, out, "--shard=2/3")[3:])
    assert r.returncode == 0, r.stderr  # items 7..13 of 22: no bad entry among them
    assert "extracted 7 images" in r.stderr
    r = run_cli("--job=merge", f"--output_dir={out}")
    assert r.returncode == 1 and "shards 1/3, 3/3 are missing" in r.stderr


def test_bad_corpus_outcomes(model18, tmp_path):
    good = write_jpeg(tmp_path / "good.jpg")
    entries = []
    for name in CORPUS:
        entries += [os.path.join(BAD, name), good]
    lst = tmp_path / "corpus.list"
    lst.write_text("\n".join(entries) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    r = run_cli(*_cmd(model18, lst, out)[3:])
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr
    failed = dict(line.split("\t", 1) for line in
                  (out / "failed.txt").read_text(encoding="utf-8").splitlines())
    written = resnet.load_features(str(out)).images
    for name, outcome in CORPUS.items():
        path = os.path.join(BAD, name)
        if outcome == "ok":
            assert path in written and path not in failed, name
        else:
            assert path not in written, name
            assert outcome in failed[path], (name, failed[path])
            assert f"resnet: skipped {path}: " in r.stderr
    assert written.count(good) == len(CORPUS)  # every good image around them was written
    assert len(written) == len(CORPUS) + list(CORPUS.values()).count("ok")


def test_corpus_images_decode_to_the_right_colours():
    from resnet.inputs.imaging import decode

    sys.path.insert(0, os.path.join(ROOT, "tests", "data"))
    from make_bad_corpus import photo

    ref = photo()
    for name in ("cmyk.jpg", "sixteen_bit.png", "rgba.png", "name with spaces ünïcödé.jpg"):
        img = decode(os.path.join(BAD, name)).astype(int)
        assert img.shape == ref.shape, name
        assert np.abs(img - ref).mean() < 6, name  # JPEG loss only
    grey = decode(os.path.join(BAD, "greyscale.png"))
    assert (grey[..., 0] == ref[..., 0]).all() and (grey[..., 2] == ref[..., 0]).all()
    assert decode(os.path.join(BAD, "one_pixel.png")).tolist() == [[[10, 200, 30]]]


def _broken_model(model50, tmp_path, name, damage):
    d = tmp_path / "broken"
    d.mkdir()
    for f in os.listdir(model50):
        if f != name:
            os.symlink(os.path.join(model50, f), d / f)
    if damage is not None:
        data = open(os.path.join(model50, name), "rb").read()
        (d / name).write_bytes(damage(data))
    return d


@pytest.mark.parametrize("damage,message", [
    (lambda b: b[: len(b) // 2], "_res3_2_branch2b_conv.w0: wrong file length"),
    (lambda b: b"\x01" + b[1:], "_res3_2_branch2b_conv.w0: bad header"),
    (lambda b: b[:8] + (10).to_bytes(8, "little") + b[16:56], "_res3_2_branch2b_conv.w0: wrong element count"),
    (None, "1 of 267 parameter files missing for ResNet-50: _res3_2_branch2b_conv.w0"),
])
def test_bad_models_one_line(model50, tmp_path, damage, message):
    d = _broken_model(model50, tmp_path, "_res3_2_branch2b_conv.w0", damage)
    r = run_cli("--job=extract", f"--model={d}", f"--data={write_jpeg(tmp_path / 'a.jpg')}",
                f"--output_dir={tmp_path / 'o'}", "--use_gpu=0")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert message in r.stderr.strip().splitlines()[-1]


def test_bad_flags_and_outputs_one_line(model50, tmp_path):
    img = write_jpeg(tmp_path / "a.jpg")
    (tmp_path / "empty.list").write_text("\n# nothing here\n")
    (tmp_path / "a_file").write_text("x")
    np.save(tmp_path / "mean.npy", np.zeros((3, 10, 10), np.float32))
    cases = [
        (["--data=" + str(tmp_path / "empty.list")], "empty.list: image list is empty"),
        (["--output_dir=" + str(tmp_path / "a_file" / "sub")], "cannot write output directory"),
        (["--mean=" + str(tmp_path / "mean.npy")], "mean has 300 values"),
        (["--layer_num=42"], "unsupported layer_num 42"),
        (["--output_layer=res9_1_addto"], "unknown output layer 'res9_1_addto'"),
    ]
    for flags, message in cases:
        args = ["--job=extract", f"--model={model50}", f"--data={img}",
                f"--output_dir={tmp_path / 'out'}", "--use_gpu=0", *flags]
        r = run_cli(*args)
        assert r.returncode == 1, (flags, r.stderr)
        assert "Traceback" not in r.stderr
        assert message in r.stderr.strip().splitlines()[-1], (flags, r.stderr)
