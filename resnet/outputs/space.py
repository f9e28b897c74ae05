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
