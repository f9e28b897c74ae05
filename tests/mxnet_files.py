"""MXNet `.params` files (the NDArray list format, V2 arrays) written with numpy, as MXNet's
NDArray::Save lays them out: header 0x112, 0, count; per array magic 0xF993FAC9, storage
type 0, ndim and int64 dims, device (cpu, 0), dtype 0 (float32), data; then the names."""
import struct

import numpy as np


def write_params(path, arrays: dict):
    out = [struct.pack("<QQQ", 0x112, 0, len(arrays))]
    for value in arrays.values():
        a = np.ascontiguousarray(value, "<f4")
        out.append(struct.pack("<IiI", 0xF993FAC9, 0, a.ndim))
        out.append(struct.pack(f"<{a.ndim}q", *a.shape))
        out.append(struct.pack("<iii", 1, 0, 0))
        out.append(a.tobytes())
    out.append(struct.pack("<Q", len(arrays)))
    for name in arrays:
        raw = name.encode()
        out.append(struct.pack("<Q", len(raw)) + raw)
    with open(path, "wb") as f:
        f.write(b"".join(out))
