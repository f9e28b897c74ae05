"""Issue 21, items 3, 5, 9, 12, 18: no writer follows a name someone else planted, one run per
folder (common/lock.py), the engine cache removes only its own entries and compiles damaged
ones again, merge joins shards of one list only, and a run that committed nothing leaves
nothing behind."""
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time

import launch
import pytest
from conftest import ROOT, run_cli, write_jpeg

import resnet
from resnet.common import lock
from resnet.common.files import sha256_lines
from resnet.errors import ResnetError, file_error
from resnet.outputs import merge as merging
from resnet.outputs.base import check_writable
from resnet.runtime import cache

VICTIM = b"precious bytes that belong to someone else\n"


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_bytes(VICTIM)
    return path


@pytest.fixture(scope="module")
def model18(model_factory):
    return model_factory(18)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    return [write_jpeg(d / f"{i}.jpg", seed=i) for i in range(4)]


def _list(path, entries):
    path.write_text("".join(f"{e}\n" for e in entries))
    return str(path)


FAST = ("--engine=dygraph", "--output_layer=pool1", "--pool=avg", "--use_gpu=0")


def _extract(model, data, out, *flags, env=None):
    return run_cli("--job=extract", f"--model={model}", f"--data={data}", f"--output_dir={out}",
                   *FAST, *flags, env=env)


def _error(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and lines, r.stderr
    return lines[-1]


# ------------------------------------------------------------------ the lock (item 5)

def test_a_held_lock_refuses_a_second_holder_naming_the_first(tmp_path):
    held = lock.acquire(str(tmp_path / ".lock"), str(tmp_path))
    try:
        with pytest.raises(lock.Busy) as e:
            lock.acquire(str(tmp_path / ".lock"), str(tmp_path))
        msg = str(e.value)
        assert msg.startswith(f"{tmp_path}: in use by another run (pid {os.getpid()} on "
                              f"{socket.gethostname()}, started 20")
        assert "\n" not in msg
    finally:
        held.release()
    assert not (tmp_path / ".lock").exists()  # removed by its holder
    lock.acquire(str(tmp_path / ".lock"), str(tmp_path)).release()  # free again


def test_a_stale_lock_file_is_taken_over(tmp_path):
    path = tmp_path / ".lock"
    path.write_text("pid=999999\nhost=gone\nstarted=2001-01-01T00:00:00\n")  # holder died
    held = lock.acquire(str(path), str(tmp_path))
    try:
        assert f"pid={os.getpid()}\n" in path.read_text() and "gone" not in path.read_text()
    finally:
        held.release()


@pytest.mark.parametrize("kind", ["symlink", "hard link"])
def test_a_planted_lock_file_is_never_written_through(tmp_path, victim, kind):
    path = tmp_path / "out" / ".lock"
    path.parent.mkdir()
    (os.symlink if kind == "symlink" else os.link)(victim, path)
    with pytest.raises(ResnetError, match="remove it$"):
        lock.acquire(str(path), str(path.parent))
    assert victim.read_bytes() == VICTIM


def test_folder_lock_removes_the_folders_it_made_when_left_empty(tmp_path):
    out = tmp_path / "a" / "b"
    with lock.folder_lock(str(out), create=True):
        assert os.listdir(out) == [".lock"]
    assert not (tmp_path / "a").exists()
    with lock.folder_lock(str(out), create=True):
        (out / "result").write_text("kept")
    assert os.listdir(out) == ["result"]  # not empty: stays, its lock file gone


def test_extract_is_refused_at_once_while_another_run_holds_the_folder(model18, images,
                                                                      tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with lock.folder_lock(str(out)):
        r = _extract(model18, images[0], out, "--resume")
        assert r.returncode == 1
        assert _error(r).startswith(f"resnet: error: {out}: in use by another run (pid "
                                    f"{os.getpid()} on {socket.gethostname()}, started ")
        assert os.listdir(out) == [".lock"]  # nothing read, nothing written
    (out / ".lock").write_text("pid=999999\nhost=gone\n")  # left by a killed run: stale
    assert _extract(model18, images[0], out).returncode == 0  # taken over: it runs
    assert ".lock" not in os.listdir(out)


def test_two_concurrent_extract_runs_on_one_folder(model18, images, tmp_path):
    out = tmp_path / "out"
    many = _list(tmp_path / "many.list", images * 10)
    first = launch.popen(
        [sys.executable, "-m", "resnet", "--job=extract", f"--model={model18}",
         f"--data={many}", f"--output_dir={out}", *FAST, "--batch_size=2"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT, RESNET_COMMIT_SECONDS="0"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "manifest.json").exists():  # the first run is under way
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read()
            time.sleep(0.05)
        first.send_signal(signal.SIGSTOP)  # paused mid-run, its lock held: never too fast
        try:
            r = _extract(model18, many, out, "--resume")
        finally:
            first.send_signal(signal.SIGCONT)
    finally:
        err = first.communicate(timeout=300)[1]
    assert r.returncode == 1
    assert _error(r).startswith(f"resnet: error: {out}: in use by another run (pid "
                                f"{first.pid} on {socket.gethostname()}, started ")
    assert first.returncode == 0, err
    assert len(resnet.load_features(str(out))) == len(images) * 10
    assert ".lock" not in os.listdir(out)


def test_merge_and_convert_are_refused_while_locked(tmp_path):
    out = tmp_path / "sharded"
    (out / "shard-1-of-1").mkdir(parents=True)
    with lock.folder_lock(str(out)):
        r = run_cli("--job=merge", f"--output_dir={out}")
        assert r.returncode == 1
        assert _error(r).startswith(f"resnet: error: {out}: in use by another run (pid "
                                    f"{os.getpid()} ")
    (out / ".lock").write_text("pid=999999\n")  # stale: merge goes on to read the shards
    r = run_cli("--job=merge", f"--output_dir={out}")
    assert r.returncode == 1 and "no manifest.json (not a finished shard)" in _error(r)
    assert not (out / ".lock").exists()
    model = tmp_path / "models" / "m"
    model.parent.mkdir()
    with lock.folder_lock(str(model.parent), name=".m.lock", subject=str(model)):
        r = run_cli("--job=convert", "--from=paddle", f"--input={tmp_path / 'x.pdparams'}",
                    f"--model={model}")
        assert r.returncode == 1
        assert _error(r).startswith(f"resnet: error: {model}: in use by another run (pid "
                                    f"{os.getpid()} ")
    # free (and a stale lock file left by a killed run): convert goes on to read its input
    (model.parent / ".m.lock").write_text("pid=999999\n")
    r = run_cli("--job=convert", "--from=paddle", f"--input={tmp_path / 'x.pdparams'}",
                f"--model={model}")
    assert r.returncode == 1 and "x.pdparams: file not found" in _error(r)
    assert os.listdir(model.parent) == []


# ------------------------------------------------------------------ nothing committed (item 18)

def test_strict_stop_at_the_first_image_leaves_nothing(model18, images, tmp_path):
    lst = _list(tmp_path / "l.list", [tmp_path / "missing.jpg", images[0]])
    out = tmp_path / "out" / "deeper"
    for _ in range(2):  # the same command again: the same error, never "already holds output"
        r = _extract(model18, lst, out, "--strict")
        assert r.returncode == 1
        assert _error(r) == (f"resnet: error: {tmp_path / 'missing.jpg'}: file not found "
                             "(stopped: --strict)")
        assert not (tmp_path / "out").exists()
    out.mkdir(parents=True)  # a folder that was there stays, empty
    with pytest.raises(ResnetError, match=r"\(stopped: --strict\)$"):
        resnet.extract(model18, lst, ["pool1"], str(out), pool="avg", engine="dygraph",
                       strict=True, format="text", use_gpu=0)
    assert os.listdir(out) == []


def test_strict_stop_keeps_the_rows_before_it_resumable(model18, images, tmp_path):
    lst = _list(tmp_path / "l.list", [images[0], tmp_path / "missing.jpg", images[1]])
    out = tmp_path / "out"
    r = _extract(model18, lst, out, "--strict", "--batch_size=1")
    assert r.returncode == 1 and "(stopped: --strict)" in _error(r)
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["status"], manifest["rows"]) == ("interrupted", 1)
    assert resnet.load_features(str(out)).images == [images[0]]
    r = _extract(model18, lst, out, "--resume", "--batch_size=1")
    assert r.returncode == 3, r.stderr  # the bad image skipped, the rest done
    assert resnet.load_features(str(out)).images == [images[0], images[1]]


def test_read_only_file_system_is_named(tmp_path, monkeypatch):
    assert file_error("/x/y", OSError(errno.EROFS, "Read-only file system")) == \
        "/x/y: read-only file system"

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", lambda path: ReadOnly())
    monkeypatch.setattr(os, "access", lambda path, mode: False)  # what EROFS makes it say
    with pytest.raises(ResnetError, match=r"cannot write output directory \(.*: read-only file "
                                          r"system\)$"):
        check_writable(str(tmp_path / "out"))


# ------------------------------------------------------------------ planted names (item 3)

def test_extract_never_writes_through_planted_names(model18, images, tmp_path, victim):
    out = tmp_path / "out"
    out.mkdir()
    pid = os.getpid()
    names = ("manifest.json", "progress.json", "features.h5", "failed.txt")
    for name in names:  # the temporaries' old predictable names, and the targets themselves
        os.symlink(victim, out / f".{name}.tmp{pid}")
        os.symlink(victim, out / name)
    lst = _list(tmp_path / "l.list", [images[0], tmp_path / "missing.jpg"])
    resnet.extract(model18, lst, ["pool1"], str(out), pool="avg", engine="dygraph",
                   overwrite=True, use_gpu=0)
    assert victim.read_bytes() == VICTIM
    for name in names:
        assert not (out / name).is_symlink()
    assert len(resnet.load_features(str(out))) == 1


def test_predict_csv_replaces_a_planted_link(model18, images, tmp_path, victim):
    for target in (victim, tmp_path / "not_yet.txt"):  # an existing file, a dangling link
        link = tmp_path / "pred.csv"
        if os.path.lexists(link):
            link.unlink()
        os.symlink(target, link)
        resnet.predict(model18, images[0], engine="dygraph", use_gpu=0,
                       output_file=str(link), overwrite=True, output_dir=str(tmp_path / "p"))
        assert not link.is_symlink() and link.read_text().startswith("path,index_1")
        assert victim.read_bytes() == VICTIM and not (tmp_path / "not_yet.txt").exists()


def test_convert_overwrite_of_a_linked_model_folder_keeps_the_target(tmp_path):
    from resnet.importers.base import write_model
    from resnet.modelio import modelinfo, params
    from resnet.models import build

    spec = build(18)
    values = params.random_params(spec)
    target = tmp_path / "theirs"
    target.mkdir()
    (target / "model.json").write_bytes(VICTIM)
    out = tmp_path / "mine"
    os.symlink(target, out)
    info = modelinfo.ModelInfo(18, "v1", None, "imagenet", {"format": "paddle"})
    write_model(str(out), spec, values, info, overwrite=True)
    assert os.listdir(target) == ["model.json"] and (target / "model.json").read_bytes() == VICTIM
    assert not out.is_symlink() and (out / "model.json").exists()
    assert sorted(os.listdir(tmp_path)) == ["mine", "theirs"]
    dangling = tmp_path / "new"
    os.symlink(tmp_path / "nowhere", dangling)  # replaced itself, nothing made where it points
    write_model(str(dangling), spec, values, info)
    assert not dangling.is_symlink() and (dangling / "model.json").exists()
    assert not (tmp_path / "nowhere").exists()


def test_diagram_and_demo_model_replace_planted_links(tmp_path, victim):
    from resnet.introspect.diagram import render
    from resnet.modelio.demo import MARKER, write_demo_model
    from resnet.models import build

    dot = tmp_path / "net.dot"
    os.symlink(victim, dot)
    assert render(build(18), str(dot)) == [str(dot)]
    assert not dot.is_symlink() and "digraph resnet_18" in dot.read_text()
    demo = tmp_path / "demo"
    demo.mkdir()
    os.symlink(tmp_path / "created_by_us.txt", demo / MARKER)  # dangling
    write_demo_model(str(demo), 18)
    assert not (tmp_path / "created_by_us.txt").exists() and not (demo / MARKER).is_symlink()
    assert victim.read_bytes() == VICTIM


def test_paddle_export_replaces_planted_links(model18, tmp_path, victim):
    prefix = tmp_path / "exported" / "model"
    prefix.parent.mkdir()
    for ext in (".pdmodel", ".pdiparams", ".resnet.json"):
        os.symlink(victim, f"{prefix}{ext}")
    r = run_cli("--job=export", f"--model={model18}", "--to=paddle_inference",
                f"--output={prefix}", "--output_layer=pool1")
    assert r.returncode == 0, r.stderr
    assert victim.read_bytes() == VICTIM
    assert not any(p.is_symlink() for p in prefix.parent.iterdir())
    assert not [n for n in os.listdir(prefix.parent) if n.startswith(".")]


# ------------------------------------------------------------------ engine cache (item 9)

def _cache_entry(root, key="a" * 32, data=b"\1" * 1000):
    folder = root / key
    folder.mkdir(parents=True)
    (folder / "model.pdiparams").write_bytes(data)
    (folder / "model.pdmodel").write_bytes(b"program")
    cache.describe(str(folder), {"model_sha256": "ab" * 32, "layer_num": 18})
    return folder


@pytest.mark.parametrize("planted", ["Documents", "thesis.txt", ".bashrc", "link"])
def test_cache_clear_and_cap_refuse_a_folder_with_other_content(tmp_path, monkeypatch,
                                                                planted):
    root = tmp_path / "home"
    entry = _cache_entry(root)
    (root / ".compiling-x").mkdir()  # the cache's own: no reason to refuse
    if planted == "Documents":
        (root / planted).mkdir()
        (root / planted / "thesis.txt").write_bytes(VICTIM)
    elif planted == "link":  # named like an entry, but a link to someone's folder
        planted = "b" * 32
        (tmp_path / "theirs").mkdir()
        os.symlink(tmp_path / "theirs", root / planted)
    else:
        (root / planted).write_bytes(VICTIM)
    before = sorted(os.listdir(root))
    r = run_cli("--job=cache", "--clear", env={"RESNET_CACHE_DIR": str(root)})
    assert r.returncode == 1
    assert _error(r) == (f"resnet: error: {root}: holds {planted!r}, which is not an engine "
                         "cache entry, so --clear removes nothing (only entries the cache made "
                         "are ever removed); set RESNET_CACHE_DIR to a folder of its own")
    assert sorted(os.listdir(root)) == before and entry.exists()
    monkeypatch.setenv(cache.MAX_ENV, "0.000000001")  # over the cap: still nothing removed
    assert cache.enforce_cap(keep="", where=str(root)) == []
    monkeypatch.delenv(cache.MAX_ENV)
    assert sorted(os.listdir(root)) == before
    r = run_cli("--job=cache", env={"RESNET_CACHE_DIR": str(root)})  # listing still works
    assert r.returncode == 0 and "1 entry" in r.stdout


def test_cache_only_removes_what_it_made(tmp_path):
    root = tmp_path / "cache"
    _cache_entry(root)
    (root / "c").mkdir()
    assert cache.foreign(str(root)) == ["c"]
    with pytest.raises(ResnetError, match="'c', which is not an engine cache entry"):
        cache.discard(str(root / "c"))
    assert (root / "c").exists()


def test_damaged_cache_entry_is_compiled_again(tmp_path, monkeypatch, caplog):
    from resnet.runtime import engine

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    builds = []

    def build(prefix):
        builds.append(prefix)
        with open(prefix + ".pdiparams", "wb") as f:
            f.write(b"\2" * 4096)
        with open(prefix + ".pdmodel", "wb") as f:
            f.write(b"program")

    key = "c" * 32
    params = tmp_path / "cache" / key / "model.pdiparams"
    caplog.set_level("INFO", logger="resnet")
    engine._entry(key, {"model_sha256": "0" * 64}, "compiling", build)
    assert len(builds) == 1
    record = json.loads((params.parent / cache.ENTRY).read_text())["files"]
    assert set(record) == {"model.pdiparams", "model.pdmodel"}
    engine._entry(key, {"model_sha256": "0" * 64}, "compiling", build)
    assert len(builds) == 1  # a whole entry is used
    cache._verified.clear()  # a new process: checksums verified on its first use
    params.write_bytes(b"\3" * 4096)  # altered, same size
    caplog.clear()
    engine._entry(key, {"model_sha256": "0" * 64}, "compiling", build)
    assert len(builds) == 2 and params.read_bytes() == b"\2" * 4096
    assert (f"engine cache entry {params.parent} is damaged (model.pdiparams was modified "
            "(checksum differs)): removing it and compiling again") in caplog.text
    with open(params, "r+b") as f:  # truncated: caught by its size, on every use
        f.truncate(100)
    engine._entry(key, {"model_sha256": "0" * 64}, "compiling", build)
    assert len(builds) == 3 and params.stat().st_size == 4096
    assert "model.pdiparams has 100 bytes, 4096 were written" in caplog.text
    # files the engine adds on first use (OpenVINO's blob) are recorded once checked
    blob = params.parent / "blob.bin"
    blob.write_bytes(b"blob")
    cache.record_check(str(params.parent), "openvino/fp32", 1e-7)
    info = json.loads((params.parent / cache.ENTRY).read_text())
    assert "blob.bin" in info["derived"] and "blob.bin" not in info["files"]
    assert cache.CHECKED not in info["files"] and cache.CHECKED not in info["derived"]
    # the backend may write its blob again (another process, another size): that file
    # alone is removed for the backend to write anew, the compiled entry stays
    blob.write_bytes(b"blob, rewritten")
    caplog.clear()
    engine._entry(key, {"model_sha256": "0" * 64}, "compiling", build)
    assert len(builds) == 3 and not blob.exists() and params.stat().st_size == 4096
    assert "blob.bin changed since it was recorded; removed" in caplog.text
    assert json.loads((params.parent / cache.ENTRY).read_text())["derived"] == {}
    assert not [n for n in os.listdir(tmp_path / "cache") if n.startswith(".")]


def test_cache_entry_in_place_of_a_link_is_refused(tmp_path, monkeypatch, victim):
    from resnet.runtime import engine

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "model.pdiparams").write_bytes(VICTIM)
    os.symlink(theirs, tmp_path / "cache" / ("d" * 32))
    with pytest.raises(ResnetError, match="is not an engine cache entry, so it is neither used"):
        engine._entry("d" * 32, {}, "compiling", lambda prefix: None)
    assert (theirs / "model.pdiparams").read_bytes() == VICTIM


def test_cache_touch_never_follows_a_planted_link(tmp_path, victim):
    entry = _cache_entry(tmp_path / "cache")
    (entry / cache.LAST_USED).unlink()
    os.symlink(victim, entry / cache.LAST_USED)
    os.utime(victim, (1000, 1000))
    cache.touch(str(entry))
    assert victim.stat().st_mtime == 1000 and victim.read_bytes() == VICTIM


# ------------------------------------------------------------------ merge (items 12, 14)

def _shard(out, i, n, **fields):
    folder = out / f"shard-{i}-of-{n}"
    folder.mkdir(parents=True)
    manifest = {"status": "complete", "format": "hdf5", "rows": 2, "items": 2,
                "data": "/lists/a.list", "shard": f"{i}/{n} of 4", "layer_num": 18,
                "full_list_sha256": "a" * 64, "full_items": 4, **fields}
    manifest = {k: v for k, v in manifest.items() if v is not None}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _merge_error(out) -> str:
    with pytest.raises(ResnetError) as e:
        merging.merge(str(out))
    assert "\n" not in str(e.value)
    return str(e.value)


def test_merge_refuses_shards_of_different_lists(tmp_path):
    out = tmp_path / "o"
    _shard(out, 1, 2)
    second = _shard(out, 2, 2, full_list_sha256="b" * 64)
    assert _merge_error(out) == (f"{second}: a shard of a different image list than shard 1 "
                                 "(list checksums differ); merge only shards of one list")


@pytest.mark.parametrize("second,ok", [({}, True), ({"data": "/lists/b.list"}, False),
                                       ({"shard": "2/2 of 6"}, False)])
def test_merge_of_shards_without_list_checksums(tmp_path, caplog, second, ok):
    out = tmp_path / "o"
    shards = [(str(_shard(out, 1, 2, full_list_sha256=None, full_items=None)), {}),
              (str(_shard(out, 2, 2, full_list_sha256=None, full_items=None, **second)), {})]
    shards = [(f, merging.read_shard_manifest(f)) for f, _ in shards]
    if ok:  # older shards that agree on --data and the list length: merged, with a warning
        merging.check_same_list(shards)
        assert "shards from before list checksums were recorded" in caplog.text
    else:
        with pytest.raises(ResnetError, match="cannot tell that it is a shard of the same list"):
            merging.check_same_list(shards)


@pytest.mark.parametrize("manifest,message", [
    ({"rows": None}, "no 'rows' count, expected a whole number >= 0"),
    ({"rows": "abc"}, "an invalid ('abc') 'rows' count, expected a whole number >= 0"),
    ({"rows": -1}, "an invalid ('-1') 'rows' count, expected a whole number >= 0"),
    ({"rows": True}, "an invalid ('True') 'rows' count, expected a whole number >= 0"),
    ({"items": 2.5}, "an invalid ('2.5') 'items' count, expected a whole number >= 0"),
    ({"format": "zip"}, "unknown format 'zip'"),
])
def test_merge_refuses_bad_shard_manifests(tmp_path, manifest, message):
    out = tmp_path / "o"
    _shard(out, 1, 2)
    second = _shard(out, 2, 2, **manifest)
    assert _merge_error(out) == f"{second / 'manifest.json'}: {message}" + (
        "" if "format" in manifest else "; extract that shard again")


@pytest.mark.parametrize("text,message", [
    ("{not json", "not valid JSON (Expecting property name"),
    ("[1, 2]", "not a valid manifest (a JSON list, expected an object)"),
    ("[" * 100000 + "]" * 100000, "JSON nested too deep; refused"),
    (None, "no manifest.json (not a finished shard)"),
])
def test_merge_refuses_unreadable_shard_manifests(tmp_path, text, message):
    out = tmp_path / "o"
    _shard(out, 1, 2)
    second = _shard(out, 2, 2)
    if text is None:
        (second / "manifest.json").unlink()
    else:
        (second / "manifest.json").write_text(text)
    assert _merge_error(out).startswith(f"{second / 'manifest.json'}: {message}")


def test_merge_without_rows_is_one_line_from_the_cli(tmp_path):
    out = tmp_path / "o"
    _shard(out, 1, 1, rows=None)
    r = run_cli("--job=merge", f"--output_dir={out}")
    assert r.returncode == 1
    assert _error(r) == (f"resnet: error: {out / 'shard-1-of-1' / 'manifest.json'}: no 'rows' "
                         "count, expected a whole number >= 0; extract that shard again")


def test_real_shards_of_two_lists_are_refused_and_of_one_list_merged(model18, images,
                                                                    tmp_path):
    a = _list(tmp_path / "a.list", images[:4])
    b = _list(tmp_path / "b.list", images[1:] + images[:1])
    out = tmp_path / "s"
    opts = dict(pool="avg", engine="dygraph", use_gpu=0)
    resnet.extract(model18, a, ["pool1"], str(out), shard=(1, 2), **opts)
    resnet.extract(model18, b, ["pool1"], str(out), shard=(2, 2), **opts)
    manifest = json.loads((out / "shard-2-of-2" / "manifest.json").read_text())
    assert (manifest["full_list_sha256"], manifest["full_items"]) == \
        (sha256_lines(images[1:] + images[:1]), 4)
    r = run_cli("--job=merge", f"--output_dir={out}")
    assert r.returncode == 1
    assert _error(r) == (f"resnet: error: {out / 'shard-2-of-2'}: a shard of a different image "
                         "list than shard 1 (list checksums differ); merge only shards of one "
                         "list")
    resnet.extract(model18, a, ["pool1"], str(out), shard=(2, 2), overwrite=True, **opts)
    victim = tmp_path / "victim.txt"
    victim.write_bytes(VICTIM)
    for name in ("manifest.json", "features.h5", "failed.txt"):  # planted at the targets
        os.symlink(victim, out / name)
    r = run_cli("--job=merge", f"--output_dir={out}", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert victim.read_bytes() == VICTIM and not (out / "manifest.json").is_symlink()
    merged = json.loads((out / "manifest.json").read_text())
    assert (merged["list_sha256"], merged["items"], merged["rows"]) == (sha256_lines(images), 4, 4)
    assert resnet.load_features(str(out)).images == images
