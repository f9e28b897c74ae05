"""Decoding and preprocessing in parallel with inference, in list order, memory bounded.

OpenCV releases the GIL while decoding and resizing, so threads overlap with the engine;
at most `prefetch` images are in flight, however long the list.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .errors import ImageError
from .imaging import preprocess


def default_workers() -> int:
    return max(1, min(4, (os.cpu_count() or 1)))


def decoded(items, mean, multi_crop=False, workers=None, prefetch=None):
    """Yield (item, crops) or (item, ImageError) for each item, in order."""
    workers = workers or default_workers()
    prefetch = prefetch or 4 * workers

    def work(item):
        try:
            return preprocess(item.path, mean, multi_crop)
        except ImageError as e:
            return e

    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        pending = deque()
        it = iter(items)
        for item in it:
            pending.append((item, pool.submit(work, item)))
            if len(pending) >= prefetch:
                break
        while pending:
            item, fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(work, nxt)))
            yield item, fut.result()


def batches(results, batch_size, on_error):
    """Group good images into lists of up to `batch_size` (item, crops); report bad ones."""
    batch = []
    for item, crops in results:
        if isinstance(crops, ImageError):
            on_error(item, crops)
            continue
        batch.append((item, crops))
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def stack(batch) -> np.ndarray:
    """All crops of a batch as one (images * crops, 3, 224, 224) array."""
    return np.concatenate([crops for _, crops in batch], axis=0)
