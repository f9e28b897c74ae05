"""The contract every registered output format keeps (resnet/outputs/base.py).

Parametrized from the FORMATS registry, so a new format is tested by being registered: a
real run writes it, reads back through load_features with the right values; a run killed
with SIGKILL and resumed gives the same bytes' worth of features as an uninterrupted one;
two shards merged equal the whole run.
"""
import os
import signal

import launch
import numpy as np
import pytest
from conftest import ROOT, run_cli
from reference import rel_err
from runs import cmd, interrupt

import resnet
from resnet.inputs import imaging
from resnet.models.preprocessing import V1
from resnet.outputs import FORMATS
from resnet.outputs.base import existing_outputs

LAYERS = ["res4_1_branch2a_conv", "output"]  # runs.cmd's layers


def _run(args):
    return launch.run(args, capture_output=True, text=True,
                      env=dict(os.environ, PYTHONPATH=ROOT))


def _same(a, b):
    assert a.images == b.images
    assert list(a.layers) == list(b.layers)
    for k in b.layers:
        assert a[k].dtype == b[k].dtype
        assert np.asarray(a[k]).tobytes() == np.asarray(b[k]).tobytes(), k


@pytest.fixture(autouse=True)
def durable_every_second(monkeypatch):
    """A durable point every second for every format (Parquet's own is 30 s), so a kill lands
    after some parts are complete and the resume has something to keep."""
    monkeypatch.setenv("RESNET_COMMIT_SECONDS", "1")


@pytest.fixture(scope="module")
def model18(model_factory):
    """ResNet-18: the formats, the journal and the merge do not depend on the depth, and the
    smaller network leaves more of the suite's time to them."""
    return model_factory(18)


@pytest.fixture(scope="module")
def expected(model18, long_list):
    """The dygraph network's outputs for the good images of the list, computed here."""
    folder = os.path.dirname(long_list)
    names = [n for n in open(long_list).read().split() if not n.startswith("missing")]
    batch = np.concatenate([imaging.preprocess(os.path.join(folder, n), V1)
                            for n in names])
    return names, resnet.load(model18).run(batch, LAYERS)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS.names())
def test_output_format_contract(model18, long_list, expected, tmp_path, fmt):
    names, want = expected
    full = tmp_path / "full"
    r = _run(cmd(model18, long_list, full, f"--format={fmt}"))
    assert r.returncode == 3, r.stderr  # two missing entries, reported and skipped
    feats = resnet.load_features(str(full))
    assert [os.path.basename(p) for p in feats.images] == names
    for k in LAYERS:
        assert feats[k].shape == want[k].shape
        assert rel_err(feats[k], want[k]) <= 1e-5, k
    assert FORMATS[fmt].read(str(full)).images == feats.images

    # kill -9 mid-run, then the same command with --resume: each image exactly once
    out = tmp_path / "killed"
    run = cmd(model18, long_list, out, f"--format={fmt}")
    rc, _ = interrupt(run, signal.SIGKILL, 0.5)
    assert rc == -signal.SIGKILL
    done = _run(run + ["--resume"])
    assert done.returncode == 3, done.stderr
    assert "resuming" in done.stderr
    _same(resnet.load_features(str(out)), feats)
    assert (out / "failed.txt").read_text() == (full / "failed.txt").read_text()
    if FORMATS[fmt].byte_identical_resume:
        names = sorted(existing_outputs(fmt, str(full)))
        assert names and sorted(existing_outputs(fmt, str(out))) == names
        for name in names:
            assert (out / name).read_bytes() == (full / name).read_bytes(), name

    # two shards (through the Python API: the same job as the command, without two more
    # interpreter starts), merged, equal the whole run
    sharded = tmp_path / "sharded"
    runs = [resnet.extract(model18, long_list, LAYERS, str(sharded), format=fmt,
                           shard=f"{i}/2", use_gpu=0, batch_size=2, engine="dygraph")
            for i in (1, 2)]
    assert sum(r.done for r in runs) == len(feats.images)
    assert sum(len(r.failed) for r in runs) == 2  # the two missing entries
    r = run_cli("--job=merge", f"--output_dir={sharded}")
    assert r.returncode == 0, r.stderr
    _same(resnet.load_features(str(sharded)), feats)
    assert (sharded / "failed.txt").read_text() == (full / "failed.txt").read_text()
