"""`--job=merge`: join the shard-I-of-N outputs of one sharded extract into one, in list order."""
from __future__ import annotations

import json
import logging
import os
import re

from resnet.common.files import atomic_write, concat
from resnet.errors import ResnetError
from resnet.outputs import FORMATS, journal
from resnet.outputs.base import existing_outputs

log = logging.getLogger("resnet")
_SHARD = re.compile(r"^shard-(\d+)-of-(\d+)$")


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
        with open(os.path.join(folder, journal.MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
        if manifest.get("status") != "complete":
            raise ResnetError(f"{folder}: shard is not complete (status "
                              f"{manifest.get('status')!r}); finish it with --resume first")
        shards.append((folder, manifest))
    first = shards[0][1]
    for folder, manifest in shards[1:]:
        for key in journal.SAME_RUN:  # the settings that make rows alike, not the slice
            if key in ("items", "list_sha256", "shard"):
                continue
            default = journal.ABSENT.get(key)
            if manifest.get(key, default) != first.get(key, default):
                raise ResnetError(f"{folder}: made with a different {key} than shard 1")
    return shards


def merge(output_dir: str, overwrite: bool = False) -> int:
    """Join the complete shards of output_dir into it, in list order; returns the rows."""
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
    for key in ("list_sha256", "position", "command", "resumed"):
        manifest.pop(key, None)
    atomic_write(os.path.join(output_dir, journal.MANIFEST),
                 json.dumps(manifest, indent=1).encode())
    log.info("merged %d shards (%d images) into %s", len(shards), rows, output_dir)
    return rows
