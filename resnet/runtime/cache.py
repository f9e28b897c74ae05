"""The engine cache on disk: one folder per compiled model (about 100-200 MB each with
OpenVINO's blob), what it was compiled from, when it was last used, and a size cap.

Each entry holds `entry.json` (model checksum and folder, depth, variant, layers, pooling,
and the size and sha256 of every file the entry was made with) and a `last_used` file whose
mtime is touched on every use. After a new entry is compiled the least recently used others
are removed until the cache fits RESNET_CACHE_MAX_GB (default 4; 0 turns the cap off). An
entry is removed by renaming it aside first, so a run that looks it up concurrently sees
either the whole entry or none (and compiles its own).

The cache folder may be set to any folder (RESNET_CACHE_DIR), so only what the cache made is
ever removed: a folder named by a cache key holding an `entry.json`. A cache folder holding
anything else (besides the cache's own hidden temporary folders) makes `--clear` and the cap
refuse, naming it. An entry is checked before use (file sizes always, checksums once per
process); one whose files changed is removed and compiled again.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass

from resnet.common.files import PRIVATE_PREFIX, atomic_write, sha256_file
from resnet.errors import ResnetError

log = logging.getLogger("resnet")
CACHE_ENV = "RESNET_CACHE_DIR"
MAX_ENV = "RESNET_CACHE_MAX_GB"
DEFAULT_MAX_GB = 4.0
ENTRY = "entry.json"
LAST_USED = "last_used"
CHECKED = "checked.json"  # the checks an entry passed, per backend and precision
#: an entry's folder name: engine.cache_key's 32 hex digits
KEY = re.compile(r"^[0-9a-f]{32}$")
#: the cache's own hidden folders: entries being compiled or removed, atomic writes
TEMP_PREFIXES = (".compiling-", ".removing-", PRIVATE_PREFIX)
#: the entry's bookkeeping, rewritten as it is used: never part of its checksums
BOOKKEEPING = (ENTRY, LAST_USED, CHECKED)
_verified: set = set()  # entries whose checksums were verified by this process


def root() -> str:
    """RESNET_CACHE_DIR, else engines/ in the user's cache folder (as the weights cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.environ.get(CACHE_ENV) or os.path.join(base, "resnet", "engines")


def max_bytes() -> int | None:
    """The cap in bytes, None when turned off."""
    text = os.environ.get(MAX_ENV, "").strip()
    try:
        gb = float(text) if text else DEFAULT_MAX_GB
    except ValueError:
        raise ResnetError(f"{MAX_ENV}={text!r}: expected a size in GB, such as 4 or 0.5 "
                          "(0: no cap)") from None
    if gb < 0:
        raise ResnetError(f"{MAX_ENV}={text!r}: expected a size >= 0 (0: no cap)")
    return int(gb * 1e9) if gb > 0 else None


def describe(folder: str, info: dict) -> None:
    """Write what an entry (still being built in `folder`) was compiled from, and the size
    and sha256 of each of its files."""
    atomic_write(os.path.join(folder, ENTRY),
                 json.dumps(dict(info, created=time.time(), files=_file_sums(folder)),
                            indent=1).encode())
    touch(folder)


def _entry_files(folder: str) -> list[str]:
    """The entry's files (relative paths), its bookkeeping left out."""
    names = []
    for base, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(TEMP_PREFIXES)]
        for name in files:
            rel = os.path.relpath(os.path.join(base, name), folder)
            if rel not in BOOKKEEPING:
                names.append(rel)
    return sorted(names)


def _file_sums(folder: str, names=None) -> dict:
    sums = {}
    for rel in names if names is not None else _entry_files(folder):
        path = os.path.join(folder, rel)
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode):
            sums[rel] = {"size": st.st_size, "sha256": sha256_file(path)}
    return sums


def _safe_name(rel) -> bool:
    return (isinstance(rel, str) and rel and not os.path.isabs(rel)
            and ".." not in rel.split(os.sep))


def damage(folder: str) -> str | None:
    """Why entry `folder` cannot be used as it is (None: it is whole). Sizes are compared on
    every call, checksums on this process's first use of the entry.

    The files compiled into the entry (`files`) are its identity: any change makes the whole
    entry unusable. Files the backend added later (`derived`: OpenVINO's compiled blob, which
    any process using the entry may write again) are a cache of their own: one that no
    longer matches its record is removed alone, and the backend writes it anew.
    """
    info = _read_json(os.path.join(folder, ENTRY))
    files = info.get("files")
    if not isinstance(files, dict) or not files:
        return "no file checksums recorded (made by an older version)"
    full = folder not in _verified
    for rel, want in files.items():
        why = _mismatch(folder, rel, want, full)
        if why:
            return why
    derived = info.get("derived")
    if isinstance(derived, dict):
        stale = [rel for rel, want in derived.items() if _mismatch(folder, rel, want, full)]
        if stale:
            _drop_derived(folder, stale)
    _verified.add(folder)
    return None


def _mismatch(folder: str, rel, want, full: bool) -> str | None:
    if not _safe_name(rel) or not isinstance(want, dict):
        return f"{ENTRY} is malformed"
    path = os.path.join(folder, rel)
    try:
        st = os.lstat(path)
    except OSError:
        return f"{rel} is missing"
    if not stat.S_ISREG(st.st_mode):
        return f"{rel} is not a plain file"
    if st.st_size != want.get("size"):
        return f"{rel} has {st.st_size} bytes, {want.get('size')} were written"
    if full and sha256_file(path) != want.get("sha256"):
        return f"{rel} was modified (checksum differs)"
    return None


def _drop_derived(folder: str, names) -> None:
    """Remove backend-written files that no longer match their record, and their records."""
    path = os.path.join(folder, ENTRY)
    info = _read_json(path)
    derived = info.get("derived") if isinstance(info.get("derived"), dict) else {}
    for rel in names:
        log.info("engine cache entry %s: %s changed since it was recorded; removed, the "
                 "backend writes it again", folder, rel)
        derived.pop(rel, None)
        target = os.path.join(folder, rel)
        try:
            if not stat.S_ISDIR(os.lstat(target).st_mode):
                os.remove(target)
        except OSError:
            pass
    info["derived"] = derived
    try:
        atomic_write(path, json.dumps(info, indent=1).encode())
    except OSError as e:  # a read-only shared cache: checked again next time
        log.debug("could not update %s: %s", path, e)


def is_entry(folder: str) -> bool:
    """Whether `folder` is an entry this cache made: a real folder named by a cache key,
    holding a plain `entry.json`."""
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            return False
        marker = os.lstat(os.path.join(folder, ENTRY))
    except OSError:
        return False
    return bool(KEY.match(os.path.basename(folder))) and stat.S_ISREG(marker.st_mode)


def _names(where: str) -> list[str]:
    """The cache folder's names, sorted ([] when it does not exist yet)."""
    try:
        return sorted(os.listdir(where))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ResnetError(f"{where}: cannot read the engine cache ({e.strerror or e})") from None


def foreign(where: str | None = None) -> list[str]:
    """The names in the cache folder that are neither entries nor the cache's own temporary
    folders: what the cache must never remove, and why it refuses to clear or cap."""
    where = where or root()
    names = _names(where)
    return [n for n in names if not (n.startswith(TEMP_PREFIXES)
                                     or is_entry(os.path.join(where, n)))]


def refusal(where: str, name: str, doing: str) -> str:
    return (f"{where}: holds {name!r}, which is not an engine cache entry, so {doing} "
            f"(only entries the cache made are ever removed); set {CACHE_ENV} to a folder of "
            "its own")


def checks(folder: str) -> dict:
    """The checks an entry passed: {"backend/precision": max relative error against the
    dygraph reference, or for int8 engine.measure_precision's figures; "backend/auto-DIGEST": the
    choice --precision=auto made with some calibration images on some CPU}."""
    return _read_json(os.path.join(folder, CHECKED))


def record_check(folder: str, key: str, result) -> None:
    record = checks(folder)
    record[key] = result
    try:
        atomic_write(os.path.join(folder, CHECKED),
                     json.dumps(record, indent=1, sort_keys=True).encode())
        _add_new_files(folder)
    except OSError as e:  # a read-only shared cache: the check just runs again next time
        log.debug("could not record the engine check in %s: %s", folder, e)


def _add_new_files(folder: str) -> None:
    """Record the checksums of files the engine wrote into the entry on first use (OpenVINO's
    compiled blob), now that its outputs were checked, so they are verified from now on."""
    path = os.path.join(folder, ENTRY)
    info = _read_json(path)
    files = info.get("files")
    if not isinstance(files, dict):
        return
    derived = info.get("derived") if isinstance(info.get("derived"), dict) else {}
    new = [rel for rel in _entry_files(folder) if rel not in files and rel not in derived]
    if new:
        derived.update(_file_sums(folder, new))
        info["derived"] = derived
        atomic_write(path, json.dumps(info, indent=1).encode())


def touch(folder: str) -> None:
    """Mark the entry used now (a read-only shared cache keeps its old times)."""
    path = os.path.join(folder, LAST_USED)
    try:
        if not os.path.lexists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                             | getattr(os, "O_NOFOLLOW", 0), 0o644))
        os.utime(path, follow_symlinks=False)  # a link there: its own time, not its target's
    except OSError as e:
        log.debug("could not mark %s used: %s", folder, e)


@dataclass
class Entry:
    key: str
    folder: str
    size: int
    last_used: float
    info: dict
    checked: dict

    @property
    def model(self) -> str:
        sha = self.info.get("model_sha256", "")
        where = self.info.get("model_dir") or "?"
        return f"{where} ({sha[:12]})" if sha else where


def _size(folder: str) -> int:
    total = 0
    for base, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total


def _read_json(path: str) -> dict:
    try:
        with open(path) as f:
            value = json.load(f)
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def entries(where: str | None = None) -> list[Entry]:
    """Every complete entry of the cache, least recently used first (anything else in the
    folder is passed over: see `foreign`)."""
    where = where or root()
    found = []
    names = _names(where)
    for name in names:
        folder = os.path.join(where, name)
        if not is_entry(folder):
            continue  # entries being compiled or removed, or not the cache's
        stamp = os.path.join(folder, LAST_USED)
        try:
            used = os.lstat(stamp if os.path.lexists(stamp) else folder).st_mtime
        except OSError:  # removed by a concurrent run since the listing
            continue
        found.append(Entry(name, folder, _size(folder), used,
                           _read_json(os.path.join(folder, ENTRY)),
                           checks(folder)))
    return sorted(found, key=lambda e: e.last_used)


def remove(entry: Entry) -> None:
    """Rename the entry aside, then delete it (only ever an entry the cache made)."""
    discard(entry.folder)


def discard(folder: str) -> None:
    """Remove entry `folder`: renamed aside first, so a concurrent lookup sees it whole or
    not at all. Anything that is not an entry (is_entry) is refused, never removed."""
    if not os.path.lexists(folder):  # a concurrent run removed it first
        return
    if not is_entry(folder):
        raise ResnetError(refusal(os.path.dirname(folder), os.path.basename(folder),
                                  "it is not removed"))
    parent = os.path.dirname(folder)
    aside = tempfile.mkdtemp(prefix=".removing-", dir=parent)
    try:
        os.rename(folder, os.path.join(aside, os.path.basename(folder)))
    except FileNotFoundError:  # a concurrent run removed it first
        pass
    finally:
        shutil.rmtree(aside, ignore_errors=True)
        _verified.discard(folder)


def enforce_cap(keep: str, where: str | None = None) -> list[Entry]:
    """Remove the least recently used entries other than `keep` until the cache fits its cap;
    returns what was removed."""
    cap = max_bytes()
    if cap is None:
        return []
    where = where or root()
    strange = foreign(where)
    if strange:  # never guess what may go in a folder that is not only ours
        log.warning("%s", refusal(where, strange[0], f"the {MAX_ENV} cap removes nothing"))
        return []
    found = entries(where)
    total = sum(e.size for e in found)
    removed = []
    for entry in found:
        if total <= cap:
            break
        if entry.folder == keep:
            continue
        try:
            remove(entry)
        except OSError as e:
            log.warning("engine cache: could not remove %s (%s)", entry.folder, e)
            continue
        total -= entry.size
        removed.append(entry)
    if removed:
        log.info("engine cache over its %.1f GB cap (%s): removed %d least recently used "
                 "entr%s, %.0f MB", cap / 1e9, MAX_ENV, len(removed),
                 "y" if len(removed) == 1 else "ies", sum(e.size for e in removed) / 1e6)
    if total > cap:
        log.warning("engine cache: %.0f MB is over the %.1f GB cap even with only the entry in "
                    "use left; raise %s", total / 1e6, cap / 1e9, MAX_ENV)
    return removed
