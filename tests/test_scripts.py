"""The shell entry points as a user runs them: extract.sh's first run, predict.sh, get_model.sh."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile

import h5py
import numpy as np
import pytest
from conftest import ROOT, readme_blocks

from resnet.modelio import params
from resnet.modelio.mean import write_v1_mean
from resnet.models import build


def _project_copy(tmp_path):
    """The scripts with the package and examples, in a scratch folder so nothing leaks."""
    dst = tmp_path / "project"
    for name in ("resnet", "example", "model"):
        shutil.copytree(os.path.join(ROOT, name), dst / name,
                        ignore=shutil.ignore_patterns("__pycache__", "demo_resnet_*", "resnet_*",
                                                      "mean_meta_224"))
    for name in ("extract.sh", "predict.sh"):
        shutil.copy(os.path.join(ROOT, name), dst / name)
    return dst


def _run(cmd, cwd, **env):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, **env))


@pytest.mark.slow
def test_first_run_extract_sh_uses_loud_demo_model(tmp_path):
    project = _project_copy(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    r = _run([str(project / "extract.sh"), "--use_gpu=0", "--batch_size=2"], cwd=work)
    assert r.returncode == 0, r.stderr
    assert "DEMO model with seeded RANDOM weights" in r.stderr
    assert "MEANINGLESS" in r.stderr and "get_model.sh" in r.stderr
    assert os.path.exists(project / "model" / "demo_resnet_50" / "_output.w0")
    assert not (work / "output").exists()  # demo features are kept apart from real ones
    with h5py.File(work / "output_demo" / "features.h5") as f:
        assert [s.decode() for s in f["images"][:]] == [
            "cat.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg"]
        assert f["res5_3_branch2c_bn"].shape == (4, 2048, 7, 7)
        assert f["res5_3_branch2c_conv"].shape == (4, 2048, 7, 7)
    r = _run([str(project / "extract.sh"), "--use_gpu=0"], cwd=work)  # again: replaced
    assert r.returncode == 0, r.stderr
    # README's HDF5 snippet reads the file the Quick start made
    snippet = readme_blocks("**`hdf5`** (default)", page="docs/outputs.md")[0]
    assert "output_demo/features.h5" in snippet
    r = _run([sys.executable, "-c", snippet], cwd=work)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["cat.jpg", "(2048,", "7,", "7)", "(4,", "2048)"]
    # predict: the demo model is reused, extra flags override the defaults
    r = _run([str(project / "predict.sh"), "--use_gpu=0", "--multi_crop=0", "--top_k=2",
              "--engine=dygraph"], cwd=work)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Label of cat.jpg is: ")
    assert sum(line.startswith("Label of ") for line in lines) == 4
    assert len(lines) == 4 * 3


def test_wrappers_never_overwrite_a_folder_the_user_names(tmp_path):
    """The demo mode's --overwrite is for its own output_demo/ only."""
    project = _project_copy(tmp_path)
    results = tmp_path / "results"
    results.mkdir()
    with h5py.File(results / "features.h5", "w") as f:
        f["res5_3_branch2c_bn"] = np.arange(200, dtype="f4")
    (results / "manifest.json").write_text('{"status": "complete", "rows": 200}')
    before = {n: (results / n).read_bytes() for n in os.listdir(results)}
    r = _run([str(project / "extract.sh"), f"--output_dir={results}", "--use_gpu=0"],
             cwd=tmp_path)
    assert r.returncode == 1
    assert "DEMO model" in r.stderr  # the demo model is still used ...
    assert r.stderr.strip().splitlines()[-1].startswith(
        f"resnet: error: {results}: already holds output (features.h5, manifest.json); "
        "pass --resume")  # ... but the user's folder is refused, as without the wrapper
    assert {n: (results / n).read_bytes() for n in os.listdir(results)} == before
    assert not (tmp_path / "output_demo").exists()


def _archives(tmp_path):
    src = tmp_path / "src"
    spec = build(50)
    params.save_model(str(src / "resnet_50"), spec, params.random_params(spec, 5))
    (src / "mean_meta_224").mkdir()
    write_v1_mean(str(src / "mean_meta_224" / "mean.meta"), np.full((3, 224, 224), 100, "f4"))
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for name in ("resnet_50", "mean_meta_224"):
        with tarfile.open(mirror / f"{name}.tar.gz", "w:gz") as tar:
            tar.add(src / name, arcname=name)
    return mirror


def _get_model(tmp_path, *args, **env):
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    shutil.copy(os.path.join(ROOT, "model", "get_model.sh"), folder / "get_model.sh")
    env.setdefault("PYTHONPATH", ROOT)
    env.setdefault("RESNET_WEIGHTS_DIR", str(tmp_path / "weights"))
    return folder, _run([str(folder / "get_model.sh"), *args], cwd=folder, **env)


def test_get_model_offline_fails_clearly(tmp_path):
    folder, r = _get_model(tmp_path, RESNET_MODEL_URL="http://127.0.0.1:9")
    assert r.returncode == 1
    assert ("resnet50_v1.paddle_v1: cannot download resnet_50.tar.gz: http://127.0.0.1:9/"
            "paddlepaddle.bj.bcebos.com/model_zoo/imagenet/resnet_50.tar.gz") in r.stderr
    assert "get_model.sh: cannot download resnet50_v1.paddle_v1" in r.stderr
    assert "RESNET_MODEL_URL" in r.stderr
    assert sorted(os.listdir(folder)) == ["get_model.sh"]  # nothing half-written


def test_get_model_downloads_checks_and_installs(tmp_path):
    """Through the weights registry: the archives side by side in a local mirror, their
    sha256 recorded on this first download (the v1 zoo publishes none)."""
    mirror = _archives(tmp_path)
    folder, r = _get_model(tmp_path, "50", RESNET_MODEL_URL=f"file://{mirror}")
    assert r.returncode == 0, r.stderr
    sums = json.loads((tmp_path / "weights" / "sha256.json").read_text())
    assert sorted(sums.values()) == sorted(
        hashlib.sha256((mirror / n).read_bytes()).hexdigest()
        for n in ("resnet_50.tar.gz", "mean_meta_224.tar.gz"))
    assert "valid v1 ResNet-50 model" in r.stdout
    assert sorted(os.listdir(folder)) == ["get_model.sh", "mean_meta_224", "resnet_50"]
    assert len(os.listdir(folder / "resnet_50")) == 267
    assert os.listdir(folder / "mean_meta_224") == ["mean.meta"]


def test_get_model_refuses_bad_checksum_and_broken_archive(tmp_path):
    mirror = _archives(tmp_path)
    (tmp_path / "weights").mkdir()
    url = "https://paddlepaddle.bj.bcebos.com/model_zoo/imagenet/mean_meta_224.tar.gz"
    (tmp_path / "weights" / "sha256.json").write_text(json.dumps({url: "0" * 64}))
    folder, r = _get_model(tmp_path, RESNET_MODEL_URL=f"file://{mirror}")
    assert r.returncode == 1
    assert ("checksum mismatch: this cache recorded sha256 " + "0" * 64) in r.stderr
    data = (mirror / "resnet_50.tar.gz").read_bytes()
    (mirror / "resnet_50.tar.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "weights" / "sha256.json").unlink()
    folder, r = _get_model(tmp_path, RESNET_MODEL_URL=f"file://{mirror}")
    assert r.returncode == 1
    assert "resnet_50.tar.gz: not a readable .tar.gz" in r.stderr
    assert sorted(os.listdir(folder)) == ["get_model.sh"]
    assert not (tmp_path / "weights" / "sha256.json").exists()  # nothing recorded
