"""Issue 21, outputs: no reader follows HDF5 out of its file, no sink writes through a name
someone else planted, a full disk stops an HDF5 run cleanly, --resume checks the recorded
state against the files before it changes anything, and names with newlines or tabs stay
one record per line.

Real runs use the tiny ResNet-18 on a few small photos with the dygraph engine (nothing to
compile); one complete run per format is shared by the tests that damage a copy of it.
"""
import json
import os
import shlex
import shutil
import subprocess
import sys

import h5py
import launch
import numpy as np
import pytest
from conftest import ROOT, run_cli, write_jpeg

import resnet
from resnet.errors import ResnetError
from resnet.inputs.lists import Item
from resnet.outputs import growing
from resnet.outputs.base import open_sink
from resnet.outputs.failures import FailureLog, read_failures

# one worker: its module fixtures are made once, not once per worker
pytestmark = pytest.mark.xdist_group("resume_integrity")

LAYERS = "avgpool,output"
IMAGES = 6
COMMON = dict(engine="dygraph", use_gpu=False, batch_size=2)


@pytest.fixture(autouse=True)
def commit_every_batch(monkeypatch):
    monkeypatch.setenv("RESNET_COMMIT_SECONDS", "0")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    names = [os.path.basename(write_jpeg(d / f"p{i}.jpg", 64 + 8 * i, 80, i))
             for i in range(IMAGES)]
    (d / "list.txt").write_text("\n".join(names) + "\n")
    return d / "list.txt"


@pytest.fixture(scope="module")
def tiny(model_factory):
    return model_factory(18)


@pytest.fixture(scope="module")
def runs(tiny, photos, tmp_path_factory):
    """One complete run per format, made once; tests damage copies of them."""
    import logging

    logging.getLogger("resnet").setLevel(logging.WARNING)
    base = tmp_path_factory.mktemp("runs")
    os.environ["RESNET_COMMIT_SECONDS"] = "0"
    try:
        made = {}
        for fmt in ("text", "pickle", "hdf5", "parquet"):
            out = base / fmt
            resnet.extract(tiny, str(photos), LAYERS, str(out), format=fmt, **COMMON)
            made[fmt] = out
    finally:
        del os.environ["RESNET_COMMIT_SECONDS"]
    return made


def _copy(runs, fmt, tmp_path):
    out = tmp_path / fmt
    shutil.copytree(runs[fmt], out)
    return out


def _snapshot(folder):
    return {os.path.relpath(os.path.join(d, n), folder): open(os.path.join(d, n), "rb").read()
            for d, _, names in os.walk(folder) for n in names if n != ".lock"}


def _refused(tiny, photos, out, fmt, *words):
    """--resume on `out` is refused in one line holding `words`, and changes no file."""
    before = _snapshot(out)
    with pytest.raises(ResnetError) as e:
        resnet.extract(tiny, str(photos), LAYERS, str(out), format=fmt, resume=True, **COMMON)
    message = str(e.value)
    assert "\n" not in message
    for word in words:
        assert str(word) in message, message
    assert _snapshot(out) == before
    return message


def _progress(out):
    return json.loads((out / "progress.json").read_text())


def _edit_progress(out, **changes):
    state = _progress(out)
    state.update(changes)
    (out / "progress.json").write_text(json.dumps(state))


def _same(a, b):
    with resnet.load_features(str(a)) as x, resnet.load_features(str(b)) as y:
        assert list(x.images) == list(y.images)
        for k in y.keys():
            np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]))


# item 1: every HDF5 reader of outputs goes through open_checked

def _features_h5(path, **extra):
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.array([b"a.jpg"]))
        f.create_dataset("labels", data=np.array([-1]))
        for name, make in extra.items():
            make(f, name)


def test_load_features_refuses_hdf5_that_reads_outside_the_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 256)
    external = tmp_path / "ext" / "features.h5"
    external.parent.mkdir()
    _features_h5(external, output=lambda f, n: f.create_dataset(
        n, shape=(1, 64), dtype="f4", external=[(str(secret), 0, 256)]))
    with pytest.raises(ResnetError, match="external file") as e:
        resnet.load_features(str(external.parent))
    assert "\n" not in str(e.value) and str(external) in str(e.value)
    linked = tmp_path / "link" / "features.h5"
    linked.parent.mkdir()
    _features_h5(linked, output=lambda f, n: f.__setitem__(n, h5py.ExternalLink(str(secret), "/x")))
    with pytest.raises(ResnetError, match="external link"):
        resnet.load_features(str(linked))


def test_merge_refuses_a_shard_that_reads_outside_it(tmp_path):
    from resnet.outputs.hdf5 import _merge_hdf5

    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 256)
    shard = tmp_path / "features.h5"
    _features_h5(shard, output=lambda f, n: f.create_dataset(
        n, shape=(1, 64), dtype="f4", external=[(str(secret), 0, 256)]))
    with pytest.raises(ResnetError, match="external file"):
        _merge_hdf5([str(shard)], str(tmp_path / "merged.h5"))
    assert not (tmp_path / "merged.h5").exists()


# item 3: no sink writes through a planted name

SHAPES = {"a": (3,), "b": (2, 2)}


def _items(n, first=0):
    return [Item(f"img{i}.jpg", "", None) for i in range(first, first + n)]


def _outputs(n, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal((n, *s)).astype(np.float32) for k, s in SHAPES.items()}


PLANTED = {"text": ["features.txt", "images.txt"],
           "pickle": [".batch_0.tmp", "batch_0"],
           "hdf5": ["features.h5"],
           "parquet": ["features.parquet/part-00000.parquet",
                       "features.parquet/.part-00000.parquet.tmp"]}


@pytest.mark.parametrize("fmt", sorted(PLANTED))
def test_sinks_never_write_through_planted_links(tmp_path, fmt):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    (out / "features.parquet" if fmt == "parquet" else out).mkdir(parents=True)
    for name in PLANTED[fmt] + ["failed.txt"]:
        os.symlink(victim, out / name)
    meta = {"dtype": "float32", "format": fmt, "key_bytes": 9}
    with open_sink(fmt, str(out), SHAPES, meta) as sink:
        for name in PLANTED[fmt]:  # and again once the sink is open (names made later)
            if not os.path.lexists(out / name):
                os.symlink(victim, out / name)
        sink.write(_items(3), _outputs(3))
        sink.flush()
    log = FailureLog(str(out / "failed.txt"))
    os.symlink(victim, out / "failed.txt")  # planted after the log removed the old one
    log.add("x.jpg", "bad")
    log.close()
    assert victim.read_bytes() == b"precious"
    for d, _, names in os.walk(out):
        for n in names:
            # the old predictable temporary name is no longer used at all
            assert not os.path.islink(os.path.join(d, n)) or n == ".part-00000.parquet.tmp", n
    with resnet.load_features(str(out / "features.parquet" if fmt == "parquet" else out)) as f:
        assert len(f) == 3


def test_planted_links_at_every_output_name_leave_the_victim_untouched(tiny, photos, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("features.txt", "images.txt", "failed.txt", "progress.json"):
        os.symlink(victim, out / name)
    with pytest.raises(ResnetError, match="already holds output"):
        resnet.extract(tiny, str(photos), LAYERS, str(out), format="text", **COMMON)
    resnet.extract(tiny, str(photos), LAYERS, str(out), format="text", overwrite=True, **COMMON)
    assert victim.read_bytes() == b"precious"
    assert not any(os.path.islink(out / n) for n in os.listdir(out))
    with resnet.load_features(str(out)) as f:
        assert len(f) == IMAGES


def test_resume_never_reopens_a_link(runs, tiny, photos, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    for fmt, name in (("text", "features.txt"), ("hdf5", "features.h5")):
        out = _copy(runs, fmt, tmp_path)
        os.replace(out / name, tmp_path / f"moved-{fmt}")
        os.symlink(victim, out / name)
        _refused(tiny, photos, out, fmt, out / name)
    assert victim.read_bytes() == b"precious"


# item 7: --resume checks the record against the files, before it changes anything

@pytest.mark.parametrize("value, words", [
    ("abc", ["'rows' is abc"]), (-5, ["'rows' is -5"]), (10 ** 12, ["'rows' is 1000000000000"]),
])
@pytest.mark.parametrize("fmt", ["text", "hdf5"])
def test_progress_numbers_out_of_range_are_refused(runs, tiny, photos, tmp_path, fmt, value,
                                                   words):
    out = _copy(runs, fmt, tmp_path)
    _edit_progress(out, rows=value)
    _refused(tiny, photos, out, fmt, out / "progress.json", *words)


@pytest.mark.parametrize("fmt", ["text", "pickle", "hdf5", "parquet"])
def test_rows_or_position_edited_upward_are_refused(runs, tiny, photos, tmp_path, fmt):
    out = _copy(runs, fmt, tmp_path)
    _edit_progress(out, rows=IMAGES + 1)
    _refused(tiny, photos, out, fmt, "progress.json")
    _edit_progress(out, rows=IMAGES, position=IMAGES + 40)
    _refused(tiny, photos, out, fmt, "'position' is")
    if fmt != "hdf5":  # HDF5 keeps no count of its own beyond its datasets' rows
        _edit_progress(out, rows=IMAGES - 1, position=IMAGES - 1)  # the files hold more
        _refused(tiny, photos, out, fmt, out)


def test_text_truncated_by_hand_is_refused(runs, tiny, photos, tmp_path):
    out = _copy(runs, "text", tmp_path)
    data = (out / "features.txt").read_bytes()
    (out / "features.txt").write_bytes(data[:len(data) // 2])
    message = _refused(tiny, photos, out, "text", out / "features.txt")
    assert f"{len(data) // 2} bytes, but {len(data)}" in message


def test_text_edited_inside_the_committed_part_is_refused(runs, tiny, photos, tmp_path):
    out = _copy(runs, "text", tmp_path)
    data = bytearray((out / "features.txt").read_bytes())
    data[-5] = ord("7") if data[-5] != ord("7") else ord("8")
    (out / "features.txt").write_bytes(bytes(data))
    _refused(tiny, photos, out, "text", out / "features.txt", "checksum")


def test_stray_batch_tmp_never_replaces_a_finished_batch(runs, tiny, photos, tmp_path):
    out = _copy(runs, "pickle", tmp_path)
    assert _progress(out)["sink"]["in_batch"] == IMAGES  # finished after the durable point
    (out / ".batch_0.tmp").write_bytes(b"\0" * 1000)
    _refused(tiny, photos, out, "pickle", out / ".batch_0.tmp", "batch_0")


def test_pickle_batch_shorter_than_recorded_is_refused(runs, tiny, photos, tmp_path):
    out = _copy(runs, "pickle", tmp_path)
    data = (out / "batch_0").read_bytes()
    (out / "batch_0").write_bytes(data[:1000])
    _refused(tiny, photos, out, "pickle", out / "batch_0", "1000 bytes")


def test_hdf5_with_fewer_rows_than_recorded_is_refused(runs, tiny, photos, tmp_path):
    out = _copy(runs, "hdf5", tmp_path)
    with h5py.File(out / "features.h5", "r+") as f:
        f["output"].resize(2, axis=0)
    _refused(tiny, photos, out, "hdf5", out / "features.h5", "'output' has 2 rows")


def test_failed_txt_shorter_than_recorded_is_refused(runs, tiny, photos, tmp_path):
    out = _copy(runs, "text", tmp_path)
    (out / "failed.txt").write_text("x.jpg\tbad\n")
    _edit_progress(out, failed_bytes=100, failed=1, position=IMAGES + 1)
    _refused(tiny, photos, out, "text", "'position' is")
    _edit_progress(out, rows=IMAGES - 1, position=IMAGES)
    _refused(tiny, photos, out, "text", out / "failed.txt", "10 bytes, but 100")


@pytest.mark.parametrize("fmt", ["text", "pickle", "hdf5", "parquet"])
def test_resume_from_a_real_earlier_point_completes_equal(runs, tiny, photos, tmp_path, fmt):
    """The checks refuse nothing legitimate: a complete run resumed is unchanged, and a
    text run cut back to a consistent earlier point (sizes and checksums recomputed) is
    completed to the same output."""
    out = _copy(runs, fmt, tmp_path)
    resnet.extract(tiny, str(photos), LAYERS, str(out), format=fmt, resume=True, **COMMON)
    _same(out, runs[fmt])
    if fmt != "text":
        return
    rows = 2
    sizes, tails = {}, {}
    for name in ("features.txt", "images.txt"):
        data = (out / name).read_bytes()
        cut = len(b"".join(data.split(b"\n")[:rows])) + rows
        fd = os.open(out / name, os.O_RDONLY)
        sizes[name], tails[name] = cut, growing.tail_digest(fd, cut)
        os.close(fd)
    _edit_progress(out, rows=rows, position=rows, sink={"sizes": sizes, "tails": tails})
    resnet.extract(tiny, str(photos), LAYERS, str(out), format="text", resume=True, **COMMON)
    _same(out, runs["text"])
    assert (out / "features.txt").read_bytes() == (runs["text"] / "features.txt").read_bytes()


def test_progress_abc_is_one_line_from_the_cli(runs, tiny, photos, tmp_path):
    out = _copy(runs, "hdf5", tmp_path)
    _edit_progress(out, rows="abc")
    before = _snapshot(out)
    r = run_cli("--job=extract", f"--model={tiny}", f"--data={photos}", f"--output_dir={out}",
                f"--output_layer={LAYERS}", "--engine=dygraph", "--use_gpu=0", "--resume")
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"resnet: error: {out}/progress.json")
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert _snapshot(out) == before


# item 11: newlines and tabs in names and messages stay one record per line

def test_escaping_round_trips():
    for text in ("a.jpg", "a\nb.jpg", "t\tab", "back\\slash\\n", "cr\r", ""):
        assert growing.unescape(growing.escape(text)) == text
        assert "\n" not in growing.escape(text) and "\t" not in growing.escape(text)
    assert growing.escape("plain/name 1.jpg") == "plain/name 1.jpg"


def test_names_with_newline_and_tab_keep_their_rows(tiny, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    names = ["a.jpg", "new\nline.jpg", "tab\there.jpg", "z.jpg"]
    for i, name in enumerate(names):
        write_jpeg(data / name, 64, 80, i)
    (data / "broken\nx\t.jpg").write_bytes(b"not an image\n\tat all")
    out = tmp_path / "out"
    summary = resnet.extract(str(tiny), str(data), LAYERS, str(out), format="text", **COMMON)
    assert summary.failed_total == 1
    lines = (out / "images.txt").read_bytes().split(b"\n")
    assert len(lines) == len(names) + 1 and lines[-1] == b""
    with resnet.load_features(str(out)) as f:
        assert [os.path.basename(p) for p in f.images] == sorted(names)
        assert len(f["output"]) == len(names)
    assert len((out / "failed.txt").read_bytes().split(b"\n")) == 2
    (key, reason), = read_failures(str(out / "failed.txt"))
    assert os.path.basename(key) == "broken\nx\t.jpg" and reason


# item 6: a full disk stops an HDF5 run in one line; --resume finishes it

DISK_LAYERS = "pool1,output"  # 784 KB a row: a few batches fill the small disk
DISK_IMAGES = 16


def _disk_cmd(model, data, out, *extra):
    return [sys.executable, "-m", "resnet", "--job=extract", f"--model={model}",
            f"--data={data}", f"--output_dir={out}", f"--output_layer={DISK_LAYERS}",
            "--use_gpu=0", "--batch_size=2", "--engine=dygraph", "--format=hdf5",
            "--no_space_check", *extra]


def _namespace():
    """How to run a script that mounts a tmpfs: a private mount namespace (as root), or a
    user namespace; None when neither works here."""
    for prefix in (["unshare", "-m", "--propagation", "private"], ["unshare", "-rm"]):
        if shutil.which("unshare") and subprocess.run(
                prefix + ["sh", "-c", "d=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs $d "
                          "&& umount $d && rmdir $d"], capture_output=True).returncode == 0:
            return prefix
    return None


@pytest.fixture(scope="module")
def disk_list(tmp_path_factory):
    d = tmp_path_factory.mktemp("disk")
    names = [os.path.basename(write_jpeg(d / f"d{i:02d}.jpg", 60, 70, i))
             for i in range(DISK_IMAGES)]
    (d / "list.txt").write_text("\n".join(names) + "\n")
    return d / "list.txt"


@pytest.mark.slow
def test_full_disk_stops_hdf5_in_one_line_and_resume_completes(tiny, disk_list, tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, RESNET_COMMIT_SECONDS="0")
    ref = tmp_path / "ref"
    r = launch.run(_disk_cmd(tiny, disk_list, ref), capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    prefix = _namespace()
    mnt, logs = tmp_path / "mnt", tmp_path / "logs"
    mnt.mkdir()
    logs.mkdir()
    out = mnt / "out"
    first, again = _disk_cmd(tiny, disk_list, out), _disk_cmd(tiny, disk_list, out, "--resume")
    if prefix:  # a real full disk: a 32 MB tmpfs, 22 MB of it taken until the retry
        script = (f'mount -t tmpfs -o size=32m tmpfs "{mnt}" && '
                  f'head -c 22000000 /dev/zero > "{mnt}/filler" || exit 9\n'
                  f'{shlex.join(first)} 2> "{logs}/full.err"; echo $? > "{logs}/full.rc"\n'
                  f'cp -a "{out}" "{logs}/after_full"\n'
                  f'rm "{mnt}/filler"\n'
                  f'{shlex.join(again)} 2> "{logs}/resume.err"; '
                  f'echo $? > "{logs}/resume.rc"\n'
                  f'cp -a "{out}" "{logs}/resumed"\n')
        r = subprocess.run(prefix + ["sh", "-c", script], capture_output=True, text=True,
                           env=env, timeout=900)
        assert r.returncode == 0, r.stderr
        full_rc, full_err = int((logs / "full.rc").read_text()), (logs / "full.err").read_text()
        resume_rc = int((logs / "resume.rc").read_text())
        resume_err = (logs / "resume.err").read_text()
        after, resumed, word = logs / "after_full", logs / "resumed", "no space left"
    else:  # no way to mount here: the same stop through the file size limit (ulimit -f)
        import resource

        def limit():
            resource.setrlimit(resource.RLIMIT_FSIZE, (6_000_000, resource.RLIM_INFINITY))

        r = subprocess.run(first, capture_output=True, text=True, env=env, preexec_fn=limit)
        full_rc, full_err = r.returncode, r.stderr
        shutil.copytree(out, logs / "after_full")
        r = launch.run(again, capture_output=True, text=True, env=env)
        resume_rc, resume_err = r.returncode, r.stderr
        after, resumed, word = logs / "after_full", out, "the file size limit"
    assert full_rc == 1, full_err
    last = full_err.strip().splitlines()[-1]
    assert last.startswith(f"resnet: error: {out}: {word}"), full_err
    assert "Traceback" not in full_err and "internal error" not in full_err
    committed = json.loads((after / "progress.json").read_text())["rows"]
    assert 0 < committed < DISK_IMAGES
    with resnet.load_features(str(after)) as got, resnet.load_features(str(ref)) as want:
        assert len(got) >= committed
        assert list(got.images)[:committed] == list(want.images)[:committed]
        for k in want.keys():
            np.testing.assert_array_equal(got[k][:committed], want[k][:committed])
    assert resume_rc == 0, resume_err
    assert "resuming" in resume_err
    _same(resumed, ref)
