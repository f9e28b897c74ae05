"""Files that are whole or absent, and their checksums: the one implementation of each.

Every writer of a finished file (parameter files, model.json, manifests, progress, merged
outputs, exports, engine records) goes through `atomic_file` / `atomic_path`: the bytes go to
a temporary file in the same folder, are fsynced, then renamed over the target, so a reader or
a crash sees the old file or the new one, never half of one.

Output folders may be writable by other local users, so no file is ever written through a
name someone else could have planted: a temporary file is created inside a fresh private
folder (`mkdtemp`: random name, mode 0700, so nobody else can put a link there), and a file
that grows in place is created with `open_new` (O_CREAT|O_EXCL|O_NOFOLLOW) or reopened with
`open_existing` (O_NOFOLLOW, regular files only). A rename replaces a planted symlink itself,
never the file it points to.

Memory shared with worker processes (decoding, engine streams) is an anonymous file whose
descriptor is handed down: `shared_memory_file`.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile

BLOCK = 1 << 22
#: prefix of the private folders temporary files are written in (a killed run may leave one)
PRIVATE_PREFIX = ".resnet-tmp-"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


@contextlib.contextmanager
def private_dir(folder: str):
    """A new folder inside `folder` that only this user can write to, removed afterwards."""
    path = tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=folder or ".")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def open_new(path: str, mode: str = "wb", **kw):
    """Create `path` for writing (and reading, with a "+" mode); an existing file or link
    there is an error (FileExistsError), never followed or truncated."""
    access = os.O_RDWR if "+" in mode else os.O_WRONLY
    fd = os.open(path, access | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o666)
    try:
        return os.fdopen(fd, mode, **kw)
    except BaseException:
        os.close(fd)
        raise


def open_existing(path: str, mode: str = "r+b"):
    """Open a regular file this run's journal says it wrote, never through a symlink
    (OSError ELOOP for a link, a ResnetError-worthy OSError for anything not a plain file)."""
    flags = (os.O_RDWR if "+" in mode or "a" in mode or "w" in mode else os.O_RDONLY)
    fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(0, "not a regular file", path)
        return os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise


def is_same_file(path: str, fd: int) -> bool:
    """Whether the name `path` (not followed if a link) is the file open as `fd`."""
    try:
        a, b = os.lstat(path), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str, fsync: bool = True):
    """A temporary path to write `path` through (for libraries that open files by name).

    The path lies in a private folder beside `path`, so a library that opens it by name
    (and would follow a symlink) can only meet what this run put there.
    """
    folder, name = os.path.split(os.path.abspath(path))
    with private_dir(folder) as private:
        tmp = os.path.join(private, name)
        yield tmp
        if fsync:
            _fsync_path(tmp)
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "wb", fsync: bool = True, **kw):
    """An open file that becomes `path` when the block ends without an error."""
    with atomic_path(path, fsync=False) as tmp:
        with open_new(tmp, mode, **kw) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())


def atomic_write(path: str, data: bytes, fsync: bool = True) -> None:
    """Replace `path` with `data`."""
    with atomic_file(path, "wb", fsync=fsync) as f:
        f.write(data)


def shared_memory_file(size: int, label: str) -> int:
    """A file descriptor of `size` zero bytes that only this process and the children it
    hands the descriptor to can reach (memory shared with worker processes): a memfd on
    Linux, else an unlinked temporary file."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create(f"resnet-{label}", getattr(os, "MFD_CLOEXEC", 0))
    else:
        fd, name = tempfile.mkstemp(prefix=f"resnet-{label}-")
        os.unlink(name)
    try:
        os.ftruncate(fd, size)
    except OSError:
        os.close(fd)
        raise
    return fd


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


def file_digest(path: str, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (`algorithm`: a hashlib name: sha256, md5, sha1)."""
    h = hashlib.new(algorithm)
    _update_from_file(h, path)
    return h.hexdigest()


def sha256_file(path: str) -> str:
    return file_digest(path, "sha256")


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
