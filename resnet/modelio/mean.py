"""The BGR mean subtracted from every crop: a v1 mean.meta, a .npy, a Caffe .binaryproto, or
the default values."""
from __future__ import annotations

import math
import os
import tokenize

import numpy as np

from resnet.modelio import safepickle
from resnet.errors import ResnetError, file_error, first_line
from resnet.models.preprocessing import DEFAULT_BGR  # noqa: F401 - its historical home

#: v1's input size: the mean image v1 wrote, and the default size of one here
INPUT_SIZE = 224


def load_mean(path: str | None, size: int = INPUT_SIZE) -> np.ndarray:
    """The mean as float32, shaped (3, size, size) from a mean image or (3, 1, 1) for a
    mean pixel (the defaults when no path is given); `size` is the network's input size."""
    if not path:
        return np.asarray(DEFAULT_BGR, dtype=np.float32).reshape(3, 1, 1)
    if not os.path.exists(path):
        raise ResnetError(f"{path}: mean file not found")
    key = "data_mean"
    if path.endswith(".npy"):
        arr, key = _read_npy(path, size), "the array"
    elif path.endswith(".binaryproto"):  # Caffe's mean image (ResNet_mean.binaryproto)
        from resnet.modelio.caffeblob import read_binaryproto

        try:
            arr, key = read_binaryproto(path), "the blob"
        except ValueError as e:
            raise ResnetError(f"{path}: not a Caffe mean blob ({first_line(str(e))})") from None
        except OSError as e:
            raise ResnetError(file_error(path, e, "expected a mean file")) from None
    else:
        obj = safepickle.load(path)
        if not isinstance(obj, dict) or "data_mean" not in obj:
            raise ResnetError(f"{path}: not a v1 mean file: expected a dict with 'data_mean'")
        arr = obj["data_mean"]
        if not isinstance(arr, (np.ndarray, list, tuple)):
            raise ResnetError(f"{path}: data_mean is a {type(arr).__name__}, expected an "
                              "array of numbers")
    try:
        arr = np.asarray(arr)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"it holds {arr.dtype}")
        arr = arr.astype(np.float32)
    except (ValueError, TypeError, OverflowError) as e:  # text, ragged or nested lists
        raise ResnetError(f"{path}: {key} is not an array of numbers "
                          f"({first_line(str(e))})") from None
    if arr.size == 3:
        arr = arr.reshape(3, 1, 1)
    elif arr.size == 3 * size * size:
        arr = arr.reshape(3, size, size)
    else:
        raise ResnetError(_wrong_size(path, arr.size, arr.shape, size))
    if not np.isfinite(arr).all():  # NaN or Inf would make every feature NaN or equal
        raise ResnetError(f"{path}: {key} holds {int((~np.isfinite(arr)).sum())} non-finite "
                          "values (NaN or Inf)")
    return arr


def _wrong_size(path: str, count: int, shape: tuple, size: int = INPUT_SIZE) -> str:
    return (f"{path}: mean has {count} values (shape {tuple(shape)}), expected "
            f"3x{size}x{size} BGR CHW or 3 per-channel values")


def _read_npy(path: str, size: int = INPUT_SIZE) -> np.ndarray:
    """A .npy mean, its header's shape and dtype checked before any data is read: only a
    3-value or 3 x size x size array of plain numbers whose bytes are all in the file."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            header = {(1, 0): np.lib.format.read_array_header_1_0,
                      (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if header is None:
                raise ValueError(f".npy format version {version} (1.0 and 2.0 are read)")
            shape, fortran, dtype = header(f)
            if dtype.kind not in "fiu" or dtype.hasobject:
                raise ValueError(f"dtype {dtype} is not a number type")
            count = math.prod(shape)
            if count not in (3, 3 * size * size):  # before a byte of it is read
                raise ResnetError(_wrong_size(path, count, shape, size))
            data = f.read(count * dtype.itemsize + 1)
            if len(data) != count * dtype.itemsize:
                raise ValueError(f"{len(data)} data bytes for shape {shape} of {dtype}")
    except OSError as e:
        raise ResnetError(file_error(path, e, "expected a mean file")) from None
    except (ValueError, TypeError, SyntaxError, RecursionError, tokenize.TokenError) as e:
        # numpy's words for a damaged header (it parses the header as a Python literal)
        raise ResnetError(f"{path}: not a valid .npy mean file ({first_line(str(e))})") \
            from None
    arr = np.frombuffer(data, dtype).copy()
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


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
