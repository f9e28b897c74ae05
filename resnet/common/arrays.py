"""Array layout changes that the importers make on full-size weights.

numpy's `ascontiguousarray(a.T)` walks one of the two arrays with a stride of a whole row,
which misses the cache on nearly every element of a matrix as large as VGG's fc6 (25088 x
4096; figures in docs/performance.md). Copying square tiles keeps both sides of each tile in
cache; the result is the same array, bit for bit.
"""
import numpy as np

_TILE = 512  # elements per side; 1 MiB of float32, both tiles fit in L2


def transposed(array, dtype=np.float32) -> np.ndarray:
    """A C-contiguous copy of the 2-D `array` transposed, as `dtype`."""
    a = np.asarray(array, dtype=dtype)
    if a.ndim != 2:
        raise ValueError(f"transposed() takes a 2-D array, got shape {a.shape}")
    rows, cols = a.shape
    out = np.empty((cols, rows), dtype=a.dtype)
    for i in range(0, rows, _TILE):
        for j in range(0, cols, _TILE):
            out[j:j + _TILE, i:i + _TILE] = a[i:i + _TILE, j:j + _TILE].T
    return out
