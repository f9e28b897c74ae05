"""Protocol Buffers' wire format, read without a compiled schema (Caffe's .caffemodel and
.binaryproto files): fields by number, packed numbers straight into numpy.

Messages are walked over a memoryview, so a 230 MB ResNet-152 .caffemodel is read with no
size cap and no copy of its float arrays until they are used.
"""
from __future__ import annotations

import numpy as np

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def _varint(buf, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def _bytes(value, what: str) -> memoryview:
    """A length-delimited field's bytes; a number where bytes belong is a malformed file."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise WireError(f"expected {what}, found a number")
    return memoryview(value)


def fields(buf):
    """(field number, wire type, value) of a message: an int for varints and fixed numbers
    (fixed32 / fixed64 as their raw bits), a memoryview for length-delimited fields."""
    buf = _bytes(buf, "a message")
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = _varint(buf, pos)
        elif wire == BYTES:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise WireError(f"field {number}: {size} bytes past the end")
            value, pos = buf[pos:pos + size], pos + size
        elif wire in (FIXED32, FIXED64):
            width = 4 if wire == FIXED32 else 8
            if pos + width > end:
                raise WireError(f"field {number}: truncated")
            value, pos = int.from_bytes(buf[pos:pos + width], "little"), pos + width
        else:
            raise WireError(f"field {number}: unsupported wire type {wire}")
        yield number, wire, value


def floats(values: list) -> np.ndarray:
    """A repeated float field's values, packed (memoryviews) or not (raw fixed32 bits)."""
    return _reals(values, "<f4", "<u4")


def doubles(values: list) -> np.ndarray:
    return _reals(values, "<f8", "<u8")


def _reals(values: list, real: str, bits: str) -> np.ndarray:
    width = np.dtype(real).itemsize
    parts = []
    for v in values:
        if isinstance(v, memoryview):
            if len(v) % width:
                raise WireError(f"packed numbers of {len(v)} bytes, not a multiple of {width}")
            parts.append(np.frombuffer(v, real))
        elif 0 <= v < 1 << (8 * width):
            parts.append(np.array([v], bits).view(real))
        else:
            raise WireError(f"a {8 * width}-bit number field holds {v}")
    return np.concatenate(parts) if parts else np.zeros(0, real)


def ints(values: list) -> list[int]:
    """A repeated integer field's values, packed or not."""
    out = []
    for v in values:
        if isinstance(v, memoryview):
            pos = 0
            while pos < len(v):
                n, pos = _varint(v, pos)
                out.append(n)
        else:
            out.append(v)
    return out


def group(buf) -> dict[int, list]:
    """A message's fields by number, each a list of values in file order."""
    out: dict[int, list] = {}
    for number, _, value in fields(buf):
        out.setdefault(number, []).append(value)
    return out


def text(value) -> str:
    return bytes(_bytes(value, "a string")).decode("utf-8", "replace")
