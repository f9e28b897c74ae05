"""Disk space: what a run will write, checked against what the output folder has, before any
image is processed; and what it did write, per image, at the end."""
from __future__ import annotations

import logging
import os
import shutil

from resnet.common.files import existing_ancestor
from resnet.errors import ResnetError

log = logging.getLogger("resnet")


def human(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} TB"


def free_bytes(folder: str) -> int:
    """Free space where `folder` is (or would be created)."""
    return shutil.disk_usage(existing_ancestor(folder)).free


def check(output_dir: str, per_image: int, images: int, skip: bool = False) -> int:
    """Log the expected output size; refuse when the folder's free space is smaller."""
    total = per_image * images
    log.info("expected output: %s per image, %s for %d images (uncompressed)",
             human(per_image), human(total), images)
    if not skip:
        free = free_bytes(output_dir)
        if free < total:
            raise ResnetError(f"{output_dir}: {human(free)} free, but the output needs about "
                              f"{human(total)}; free space, pick smaller outputs (--pool, "
                              "--dtype=float16, --compression) or pass --no_space_check")
    return total


def report_written(files: list[str], rows: int) -> int:
    """Log the bytes actually on disk per image."""
    total = 0
    for path in files:
        if os.path.isdir(path):
            total += sum(os.path.getsize(os.path.join(d, n))
                         for d, _, names in os.walk(path) for n in names)
        elif os.path.exists(path):
            total += os.path.getsize(path)
    if rows:
        log.info("written: %s in %d rows, %s per image", human(total), rows, human(total / rows))
    return total


#: free space kept for the journal's own files (progress.json, manifest.json) when a sink
#: reserves room for its next write
JOURNAL_ROOM = 1 << 20
_FALLOC_FL_KEEP_SIZE = 1


def reserve(fd: int, size: int, folder: str, start: int = 0) -> None:
    """Make sure the open file `fd` can grow to `size` bytes before anything is written
    into it: a library that cannot survive a failed write (HDF5 corrupts its metadata) is
    then never handed a full disk. The blocks are allocated now (fallocate, keeping the
    file's size) where the file system allows it, else the free space is compared; either
    way a shortfall (or a `ulimit -f` below `size`) is one line naming the folder. Bytes
    before `start` are known to be allocated already (written and flushed)."""
    import resource

    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and size > limit:
        raise ResnetError(f"{folder}: the file size limit (ulimit -f, {human(limit)}) is "
                          f"reached; the next write needs a file of {human(size)}. What was "
                          "committed is kept: raise the limit and rerun with --resume")
    st = os.fstat(fd)
    missing = max(0, size - st.st_blocks * 512)  # bytes not yet allocated to the file
    free = shutil.disk_usage(folder).free
    if free < missing + JOURNAL_ROOM or not _fallocate(fd, min(start, size), size):
        raise ResnetError(f"{folder}: no space left on the device ({human(free)} free, the "
                          f"next write needs about {human(missing + JOURNAL_ROOM)}). What was "
                          "committed is kept: free space and rerun with --resume")


def release(fd: int) -> None:
    """Free the blocks `reserve` allocated past the end of the file `fd` (a file cut back
    frees all its blocks past the new end; its size and bytes stay as they are)."""
    st = os.fstat(fd)
    if st.st_blocks * 512 > st.st_size + (1 << 16):
        os.ftruncate(fd, st.st_size + 1)
        os.ftruncate(fd, st.st_size)


def _fallocate(fd: int, start: int, size: int) -> bool:
    """Allocate the blocks of bytes [start, size) of `fd` without changing its size; False
    when the disk is full, True when done or when the file system cannot preallocate."""
    import ctypes
    import ctypes.util
    import errno

    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            _libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64,
                                        ctypes.c_int64]
        except (OSError, AttributeError):
            _libc = False
    if not _libc or size <= start:
        return True
    if _libc.fallocate(fd, _FALLOC_FL_KEEP_SIZE, start, size - start) == 0:
        return True
    return ctypes.get_errno() not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


_libc = None
