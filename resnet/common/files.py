"""Files that are whole or absent, and their checksums: the one implementation of each.

Every writer of a finished file (parameter files, model.json, manifests, progress, merged
outputs, exports, engine records) goes through `atomic_file` / `atomic_path`: the bytes go to
a temporary name in the same folder, are fsynced, then renamed over the target, so a reader or
a crash sees the old file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil

BLOCK = 1 << 22


def _tmp_name(path: str) -> str:
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.tmp{os.getpid()}")


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str, fsync: bool = True):
    """A temporary path to write `path` through (for libraries that open files by name)."""
    tmp = _tmp_name(path)
    try:
        yield tmp
        if fsync:
            _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "wb", fsync: bool = True, **kw):
    """An open file that becomes `path` when the block ends without an error."""
    with atomic_path(path, fsync=False) as tmp:
        with open(tmp, mode, **kw) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())


def atomic_write(path: str, data: bytes, fsync: bool = True) -> None:
    """Replace `path` with `data`."""
    with atomic_file(path, "wb", fsync=fsync) as f:
        f.write(data)


def concat(sources, target: str) -> None:
    """The files' bytes one after another (one source: a copy), written atomically."""
    with atomic_file(target) as dst:
        for src in sources:
            with open(src, "rb") as f:
                shutil.copyfileobj(f, dst, BLOCK)


def existing_ancestor(path: str) -> str:
    """`path`, or its nearest ancestor that exists (where a new folder would be created)."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def _update_from_file(h, path: str) -> None:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            h.update(block)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    _update_from_file(h, path)
    return h.hexdigest()


def sha256_files(folder: str, names) -> str:
    """One sha256 over named files in order (each name, then its bytes): a model's identity."""
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode())
        _update_from_file(h, os.path.join(folder, name))
    return h.hexdigest()


def sha256_lines(lines) -> str:
    """sha256 over text lines (each UTF-8, newline-terminated): an image list's identity."""
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8", "surrogateescape") + b"\n")
    return h.hexdigest()
