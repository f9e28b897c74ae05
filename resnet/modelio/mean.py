"""The BGR mean subtracted from every crop: a v1 mean.meta, a .npy, a Caffe .binaryproto, or
the default values."""
from __future__ import annotations

import os

import numpy as np

from resnet.modelio import safepickle
from resnet.errors import ResnetError
from resnet.models.graph import INPUT_SIZE

#: Per-channel BGR means v1 used when no mean file was given.
DEFAULT_BGR = (103.939, 116.779, 123.68)
MEAN_SHAPE = (3, INPUT_SIZE, INPUT_SIZE)


def load_mean(path: str | None) -> np.ndarray:
    """The mean as float32, shaped (3, 224, 224) from a file or (3, 1, 1) for the defaults."""
    if not path:
        return np.asarray(DEFAULT_BGR, dtype=np.float32).reshape(3, 1, 1)
    if not os.path.exists(path):
        raise ResnetError(f"{path}: mean file not found")
    if path.endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise ResnetError(f"{path}: not a valid .npy mean file ({e})") from None
    elif path.endswith(".binaryproto"):  # Caffe's mean image (ResNet_mean.binaryproto)
        from resnet.modelio.caffeblob import read_binaryproto

        try:
            arr = read_binaryproto(path)
        except ValueError as e:
            raise ResnetError(f"{path}: not a Caffe mean blob ({e})") from None
    else:
        obj = safepickle.load(path)
        if not isinstance(obj, dict) or "data_mean" not in obj:
            raise ResnetError(f"{path}: not a v1 mean file: expected a dict with 'data_mean'")
        arr = obj["data_mean"]
    arr = np.asarray(arr, dtype=np.float32)
    if arr.size == 3:
        return arr.reshape(3, 1, 1)
    if arr.size != np.prod(MEAN_SHAPE):
        raise ResnetError(f"{path}: mean has {arr.size} values (shape {arr.shape}), expected "
                          f"3x{INPUT_SIZE}x{INPUT_SIZE} BGR CHW or 3 per-channel values")
    return arr.reshape(MEAN_SHAPE)


def write_v1_mean(path: str, mean: np.ndarray) -> None:
    """Write a mean.meta the way v1's Python 2 cPickle did (protocol 2, str keys and bytes).

    The opcodes are written by hand, as Python 2 emitted them (minus memo puts): the array is
    rebuilt through `numpy.core.multiarray._reconstruct` from Python 2 `str` raw bytes.
    """
    import struct

    data = np.ascontiguousarray(mean, dtype="<f4").reshape(-1)
    raw = data.tobytes()

    def s(text: bytes) -> bytes:  # a Python 2 str: SHORT_BINSTRING or BINSTRING
        if len(text) < 256:
            return b"U" + bytes([len(text)]) + text
        return b"T" + struct.pack("<I", len(text)) + text

    def i(v: int) -> bytes:
        return b"K" + bytes([v]) if v < 256 else b"M" + struct.pack("<H", v) if v < 65536 \
            else b"J" + struct.pack("<i", v)

    array = (b"cnumpy.core.multiarray\n_reconstruct\n"
             b"cnumpy\nndarray\n" + i(0) + b"\x85" + s(b"b") + b"\x87R"
             + b"(" + i(1) + i(data.size) + b"\x85"
             + b"cnumpy\ndtype\n" + s(b"f4") + i(0) + i(1) + b"\x87R"
             + b"(" + i(3) + s(b"<") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff" + i(0) + b"tb"
             + b"\x89" + s(raw) + b"tb")
    body = (b"\x80\x02}(" + s(b"data_mean") + array
            + s(b"image_size") + i(INPUT_SIZE)
            + s(b"mean_image_size") + i(INPUT_SIZE)
            + s(b"num_classes") + i(1000)
            + s(b"color") + b"\x88"
            + b"u.")
    with open(path, "wb") as f:
        f.write(body)
