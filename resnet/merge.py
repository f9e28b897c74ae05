"""`--job=merge`: join the shard-I-of-N outputs of one sharded extract into one, in list order."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil

from . import journal
from .errors import ResnetError
from .sinks import H5_NAME, IMAGES_NAME, TEXT_NAME

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
        for key in ("model_sha256", "layers", "format", "multi_crop", "mean", "layer_num"):
            if manifest.get(key) != first.get(key):
                raise ResnetError(f"{folder}: made with a different {key} than shard 1")
    return shards


def merge(args) -> int:
    shards = find_shards(args.output_dir)
    fmt = shards[0][1]["format"]
    out = args.output_dir
    targets = {"hdf5": [H5_NAME], "text": [TEXT_NAME, IMAGES_NAME]}.get(fmt)
    if targets is None:
        raise ResnetError(f"{out}: merging {fmt} shards is not supported (hdf5 and text are); "
                          "pickle shards are complete v1 batch files already")
    journal.check_free(out, targets, False, args.overwrite)
    rows = sum(m["rows"] for _, m in shards)
    if fmt == "hdf5":
        _merge_hdf5([os.path.join(f, H5_NAME) for f, _ in shards], os.path.join(out, H5_NAME))
    else:
        for name in targets:
            _concat([os.path.join(f, name) for f, _ in shards], os.path.join(out, name))
    failed = [os.path.join(f, journal.FAILED) for f, _ in shards
              if os.path.exists(os.path.join(f, journal.FAILED))]
    if failed:
        _concat(failed, os.path.join(out, journal.FAILED))
    manifest = dict(shards[0][1], shard=None, rows=rows, merged_from=[f for f, _ in shards],
                    items=sum(m["items"] for _, m in shards),
                    failed=sum(m.get("failed", 0) for _, m in shards))
    for key in ("list_sha256", "position", "command", "resumed"):
        manifest.pop(key, None)
    journal.atomic_write(os.path.join(out, journal.MANIFEST),
                         json.dumps(manifest, indent=1).encode())
    log.info("merged %d shards (%d images) into %s", len(shards), rows, out)
    return 0


def _concat(sources, target):
    tmp = f"{target}.tmp{os.getpid()}"
    with open(tmp, "wb") as dst:
        for src in sources:
            with open(src, "rb") as f:
                shutil.copyfileobj(f, dst, 1 << 22)
    os.replace(tmp, target)


def _merge_hdf5(sources, target, block=256):
    """Copy shard rows into one file, block by block so memory stays small."""
    import h5py

    tmp = f"{target}.tmp{os.getpid()}"
    with h5py.File(sources[0], "r") as first, h5py.File(tmp, "w") as dst:
        lengths = []
        for src in sources:
            with h5py.File(src, "r") as f:
                lengths.append(f["images"].shape[0])
        total = sum(lengths)
        widest = {}  # fixed-length string datasets: the widest of all shards
        for src in sources:
            with h5py.File(src, "r") as f:
                for name, ds in f.items():
                    if ds.dtype.kind == "S":
                        widest[name] = max(widest.get(name, 1), ds.dtype.itemsize)
        for name, ds in first.items():
            dtype = h5py.string_dtype("utf-8", widest[name]) if name in widest else ds.dtype
            dst.create_dataset(name, shape=(total, *ds.shape[1:]), dtype=dtype,
                               chunks=ds.chunks, maxshape=(None, *ds.shape[1:]))
        for key, value in first.attrs.items():
            dst.attrs[key] = value
        dst.attrs["count"] = total
        offset = 0
        for src, n in zip(sources, lengths):
            with h5py.File(src, "r") as f:
                for name in first:
                    for i in range(0, n, block):
                        j = min(n, i + block)
                        dst[name][offset + i:offset + j] = f[name][i:j]
            offset += n
    os.replace(tmp, target)
