"""The engine cache's bookkeeping: least-recently-used eviction under RESNET_CACHE_MAX_GB, and
--job=cache listing and clearing. Entries here are folders of the real layout with files of
chosen sizes (compiling real ones is covered in test_engine.py)."""
import os
import time

import pytest
from conftest import run_cli

from resnet.errors import ResnetError
from resnet.runtime import cache


def K(name):
    """A readable name as an entry key (32 hex digits, the cache's naming scheme)."""
    return name if cache.KEY.match(name) else name.encode().hex().ljust(32, "0")


def _entry(root, key, mb, used, layers=("output",), checked=None):
    folder = root / K(key)
    folder.mkdir(parents=True)
    (folder / "model.pdiparams").write_bytes(b"\0" * int(mb * 1e6))
    cache.describe(str(folder), {"model_sha256": "ab" * 32, "model_dir": f"/models/{key}",
                                 "layer_num": 50, "variant": "v1", "layers": list(layers),
                                 "pool": "none"})
    if checked:
        (folder / cache.CHECKED).write_text(checked)
    os.utime(folder / cache.LAST_USED, (used, used))
    return str(folder)


def test_least_recently_used_go_first_and_the_entry_in_use_stays(tmp_path, monkeypatch):
    now = time.time()
    old = _entry(tmp_path, "old", 3, now - 300)
    mid = _entry(tmp_path, "mid", 3, now - 200)
    kept = _entry(tmp_path, "inuse", 3, now - 400)  # oldest stamp, but the one being used
    new = _entry(tmp_path, "new", 3, now - 100)
    monkeypatch.setenv(cache.MAX_ENV, "0.0065")  # 6.5 MB: two of the four fit
    removed = cache.enforce_cap(keep=kept, where=str(tmp_path))
    assert [e.key for e in removed] == [K("old"), K("mid")]
    assert sorted(os.listdir(tmp_path)) == sorted([K("inuse"), K("new")])
    assert [e.key for e in cache.entries(str(tmp_path))] == [K("inuse"), K("new")]
    assert not os.path.exists(old) and not os.path.exists(mid) and os.path.exists(new)
    monkeypatch.setenv(cache.MAX_ENV, "0")  # no cap
    assert cache.enforce_cap(keep=kept, where=str(tmp_path)) == []


def test_an_entry_removed_by_a_concurrent_run_is_passed_over(tmp_path, monkeypatch):
    now = time.time()
    _entry(tmp_path, "a", 1, now - 200)
    gone = _entry(tmp_path, "b", 1, now - 100)
    real = os.lstat

    def lstat(path, *a, **k):  # "b" is renamed aside by another run after it was listed
        if str(path).startswith(gone):
            raise FileNotFoundError(2, "No such file or directory", path)
        return real(path, *a, **k)

    monkeypatch.setattr(cache, "is_entry", lambda folder: True)  # seen as an entry, then gone
    monkeypatch.setattr(cache.os, "lstat", lstat)
    assert [e.key for e in cache.entries(str(tmp_path))] == [K("a")]


@pytest.mark.parametrize("value", ["lots", "-1"])
def test_bad_cap_is_one_line(monkeypatch, value):
    monkeypatch.setenv(cache.MAX_ENV, value)
    with pytest.raises(ResnetError, match=f"^{cache.MAX_ENV}='{value}': expected a size"):
        cache.max_bytes()


def test_job_cache_lists_and_clears(tmp_path):
    root = tmp_path / "engines"
    now = time.time()
    _entry(root, "a" * 32, 2, now - 3600, layers=("res5_3_branch2c_bn", "output"),
           checked='{"openvino/fp32": 1e-06}')
    _entry(root, "b" * 32, 1, now)
    (root / ".compiling-x").mkdir()  # not an entry yet
    env = dict(os.environ, RESNET_CACHE_DIR=str(root))
    r = run_cli("--job=cache", env=env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == (f"engine cache {root}: 2 entries, 3 MB of 4.0 GB (RESNET_CACHE_MAX_GB); "
                        "least recently used first")
    assert lines[1].split() == ["entry", "model", "net", "layers", "checked", "MB", "last", "use"]
    assert lines[2].split()[:7] == ["a" * 12, f"/models/{'a' * 32}", "(abababababab)",
                                    "ResNet-50", "v1", "res5_3_branch2c_bn,output",
                                    "openvino/fp32"]
    assert lines[2].split()[7] == "2" and lines[3].split()[0] == "b" * 12
    r = run_cli("--job=cache", "--clear", env=env)
    assert r.returncode == 0
    assert f"removed 2 engine cache entries (3 MB) from {root}" in r.stderr
    assert os.listdir(root) == [".compiling-x"]


def test_the_cache_folder_follows_the_user_cache_setting(tmp_path, monkeypatch):
    """RESNET_CACHE_DIR first; else engines/ under XDG_CACHE_HOME, as the weights cache;
    else under ~/.cache."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(cache.CACHE_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert cache.root() == str(tmp_path / "home" / ".cache" / "resnet" / "engines")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.root() == str(tmp_path / "xdg" / "resnet" / "engines")
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "own"))
    assert cache.root() == str(tmp_path / "own")
