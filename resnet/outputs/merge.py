"""`--job=merge`: join the shard-I-of-N outputs of one sharded extract into one, in list order."""
from __future__ import annotations

import json
import logging
import os
import re

from resnet.common.files import atomic_write, concat
from resnet.common import jsonread
from resnet.common.lock import folder_lock
from resnet.errors import ResnetError
from resnet.outputs import FORMATS, journal
from resnet.outputs.base import existing_outputs

log = logging.getLogger("resnet")
_SHARD = re.compile(r"^shard-(\d+)-of-(\d+)$")
#: far above any real manifest (which holds at most a class list and part sizes)
MAX_MANIFEST_BYTES = 64 << 20


def find_shards(output_dir: str) -> list[tuple[str, dict]]:
    """The complete shard directories of output_dir, in order, with their manifests."""
    if not os.path.isdir(output_dir):
        raise ResnetError(f"{output_dir}: not found")
    found = {}
    for name in os.listdir(output_dir):
        m = _SHARD.match(name)
        if m:
            found[int(m.group(1)), int(m.group(2))] = os.path.join(output_dir, name)
    if not found:
        raise ResnetError(f"{output_dir}: no shard-I-of-N folders to merge")
    counts = {n for _, n in found}
    if len(counts) != 1:
        raise ResnetError(f"{output_dir}: shards of different splits ({sorted(counts)}) side by side")
    n = counts.pop()
    missing = [f"{i}/{n}" for i in range(1, n + 1) if (i, n) not in found]
    if missing:
        raise ResnetError(f"{output_dir}: shards {', '.join(missing)} are missing")
    shards = []
    for i in range(1, n + 1):
        folder = found[i, n]
        manifest = read_shard_manifest(folder)
        if manifest.get("status") != "complete":
            raise ResnetError(f"{folder}: shard is not complete (status "
                              f"{repr(manifest.get('status'))[:40]}); finish it with --resume "
                              "first")
        shards.append((folder, manifest))
    first = shards[0][1]
    for folder, manifest in shards[1:]:
        for key in journal.SAME_RUN:  # the settings that make rows alike, not the slice
            if key in ("items", "list_sha256", "shard"):
                continue
            default = journal.ABSENT.get(key)
            if manifest.get(key, default) != first.get(key, default):
                raise ResnetError(f"{folder}: made with a different {key} than shard 1")
    check_same_list(shards)
    return shards


def _count(manifest: dict, key: str, path: str) -> int:
    value = manifest.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        what = "no" if value is None else f"an invalid ({str(value)[:40]!r})"
        raise ResnetError(f"{path}: {what} {key!r} count, expected a whole number >= 0; "
                          "extract that shard again")
    return value


def read_shard_manifest(folder: str) -> dict:
    """A shard's manifest.json, checked for what merge relies on, or a one-line refusal."""
    path = os.path.join(folder, journal.MANIFEST)
    if not os.path.lexists(path):
        raise ResnetError(f"{path}: no manifest.json (not a finished shard)")
    manifest = jsonread.load(path, MAX_MANIFEST_BYTES)  # bounded size and depth
    if not isinstance(manifest, dict):
        raise ResnetError(f"{path}: not a valid manifest (a JSON {type(manifest).__name__}, "
                          "expected an object)")
    if manifest.get("status") == "complete":
        for key in ("rows", "items"):
            _count(manifest, key, path)
        if manifest.get("format") not in FORMATS.names():
            raise ResnetError(f"{path}: unknown format {str(manifest.get('format'))[:40]!r}")
    return manifest


def _total(manifest: dict):
    """The whole list's length, from `full_items` or the "I/N of TOTAL" shard field."""
    if "full_items" in manifest:
        return manifest["full_items"]
    m = re.search(r" of (\d+)$", str(manifest.get("shard") or ""))
    return int(m.group(1)) if m else None


def check_same_list(shards) -> None:
    """Refuse shards of different image lists. Shards record the whole list's checksum;
    shards from before that field are merged only if they agree on --data and the list's
    length (the best identity they carry), with a warning saying so."""
    first = shards[0][1]
    if all("full_list_sha256" in m for _, m in shards):
        for folder, manifest in shards[1:]:
            if (manifest["full_list_sha256"], _total(manifest)) != \
                    (first["full_list_sha256"], _total(first)):
                raise ResnetError(f"{folder}: a shard of a different image list than shard 1 "
                                  "(list checksums differ); merge only shards of one list")
        return
    for folder, manifest in shards[1:]:
        for what, a, b in (("--data", manifest.get("data"), first.get("data")),
                           ("list length", _total(manifest), _total(first))):
            if a != b or a is None:
                raise ResnetError(f"{folder}: cannot tell that it is a shard of the same list "
                                  f"as shard 1 (its manifest has no list checksum and {what} "
                                  "differs or is missing); extract the shards again")
    log.warning("%s: shards from before list checksums were recorded: merged because they "
                "agree on --data and the list length", os.path.dirname(shards[0][0]))


def merge(output_dir: str, overwrite: bool = False) -> int:
    """Join the complete shards of output_dir into it, in list order, holding the folder's
    lock (common/lock.py); returns the rows."""
    if not os.path.isdir(output_dir):
        raise ResnetError(f"{output_dir}: not found")
    with folder_lock(output_dir):
        return _merge(output_dir, overwrite)


def _merge(output_dir: str, overwrite: bool) -> int:
    shards = find_shards(output_dir)
    fmt = shards[0][1]["format"]
    sink = FORMATS[fmt]
    earlier = journal.check_free(output_dir, sink.files or existing_outputs(fmt, output_dir),
                                 False, overwrite)
    for name in set(earlier) | set(existing_outputs(fmt, output_dir)):  # --overwrite
        journal.remove(os.path.join(output_dir, name))
    rows = sum(m["rows"] for _, m in shards)
    sink.merge([f for f, _ in shards], output_dir)
    failed = [os.path.join(f, journal.FAILED) for f, _ in shards
              if os.path.exists(os.path.join(f, journal.FAILED))]
    if failed:
        concat(failed, os.path.join(output_dir, journal.FAILED))
    manifest = dict(shards[0][1], shard=None, rows=rows, merged_from=[f for f, _ in shards],
                    items=sum(m["items"] for _, m in shards),
                    failed=sum(m.get("failed", 0) for _, m in shards))
    for key in ("list_sha256", "full_list_sha256", "full_items", "position", "command",
                "resumed"):
        manifest.pop(key, None)
    if "full_list_sha256" in shards[0][1]:  # the merged list is the whole list
        manifest["list_sha256"] = shards[0][1]["full_list_sha256"]
    atomic_write(os.path.join(output_dir, journal.MANIFEST),
                 json.dumps(manifest, indent=1).encode())
    log.info("merged %d shards (%d images) into %s", len(shards), rows, output_dir)
    return rows
