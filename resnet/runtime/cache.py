"""The engine cache on disk: one folder per compiled model (about 100-200 MB each with
OpenVINO's blob), what it was compiled from, when it was last used, and a size cap.

Each entry holds `entry.json` (model checksum and folder, depth, variant, layers, pooling)
and a `last_used` file whose mtime is touched on every use. After a new entry is compiled the
least recently used others are removed until the cache fits RESNET_CACHE_MAX_GB (default 4;
0 turns the cap off). An entry is removed by renaming it aside first, so a run that looks it
up concurrently sees either the whole entry or none (and compiles its own).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass

from resnet.common.files import atomic_write
from resnet.errors import ResnetError

log = logging.getLogger("resnet")
CACHE_ENV = "RESNET_CACHE_DIR"
MAX_ENV = "RESNET_CACHE_MAX_GB"
DEFAULT_MAX_GB = 4.0
ENTRY = "entry.json"
LAST_USED = "last_used"
CHECKED = "checked.json"  # the checks an entry passed, per backend and precision


def root() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(
        os.path.expanduser("~"), ".cache", "resnet", "engines")


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
    """Write what an entry (still being built in `folder`) was compiled from."""
    atomic_write(os.path.join(folder, ENTRY),
                 json.dumps(dict(info, created=time.time()), indent=1).encode())
    touch(folder)


def checks(folder: str) -> dict:
    """The checks an entry passed: {"backend/precision": max relative error against the
    dygraph reference, or for int8 engine.measure_int8's figures}."""
    return _read_json(os.path.join(folder, CHECKED))


def record_check(folder: str, key: str, result) -> None:
    record = checks(folder)
    record[key] = result
    try:
        atomic_write(os.path.join(folder, CHECKED),
                     json.dumps(record, indent=1, sort_keys=True).encode())
    except OSError as e:  # a read-only shared cache: the check just runs again next time
        log.debug("could not record the engine check in %s: %s", folder, e)


def touch(folder: str) -> None:
    """Mark the entry used now (a read-only shared cache keeps its old times)."""
    path = os.path.join(folder, LAST_USED)
    try:
        with open(path, "a"):
            pass
        os.utime(path)
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
    """Every complete entry of the cache, least recently used first."""
    where = where or root()
    found = []
    try:
        names = sorted(os.listdir(where))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ResnetError(f"{where}: cannot read the engine cache ({e.strerror or e})") from None
    for name in names:
        folder = os.path.join(where, name)
        if name.startswith(".") or not os.path.isdir(folder):
            continue  # entries being compiled or removed
        stamp = os.path.join(folder, LAST_USED)
        try:
            used = os.path.getmtime(stamp if os.path.exists(stamp) else folder)
        except OSError:  # removed by a concurrent run since the listing
            continue
        found.append(Entry(name, folder, _size(folder), used,
                           _read_json(os.path.join(folder, ENTRY)),
                           checks(folder)))
    return sorted(found, key=lambda e: e.last_used)


def remove(entry: Entry) -> None:
    """Rename the entry aside, then delete it."""
    parent = os.path.dirname(entry.folder)
    aside = tempfile.mkdtemp(prefix=".removing-", dir=parent)
    try:
        os.rename(entry.folder, os.path.join(aside, entry.key))
    finally:
        shutil.rmtree(aside, ignore_errors=True)


def enforce_cap(keep: str, where: str | None = None) -> list[Entry]:
    """Remove the least recently used entries other than `keep` until the cache fits its cap;
    returns what was removed."""
    cap = max_bytes()
    if cap is None:
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
