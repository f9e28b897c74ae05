"""Caffe's BlobProto (the arrays in a .caffemodel, and the whole of a .binaryproto mean file),
read with the protobuf wire reader: no Caffe, no compiled caffe.proto."""
from __future__ import annotations

import math

import numpy as np

from resnet.common import protowire as pw

# caffe.proto, message BlobProto
_NUM, _CHANNELS, _HEIGHT, _WIDTH, _DATA, _SHAPE, _DOUBLE_DATA = 1, 2, 3, 4, 5, 7, 8
_DIM = 1  # BlobShape.dim


def read_blob(buf) -> np.ndarray:
    """The float32 array of a serialized BlobProto, in its recorded shape."""
    f = pw.group(buf)
    if _SHAPE in f:
        shape = tuple(pw.ints(pw.group(f[_SHAPE][-1]).get(_DIM, [])))
    else:  # the legacy 4-D form
        shape = tuple(f.get(k, [0])[-1] for k in (_NUM, _CHANNELS, _HEIGHT, _WIDTH))
        if not all(isinstance(d, int) for d in shape):
            raise pw.WireError("blob dimensions that are not numbers")
        while len(shape) > 1 and shape[0] == 1 and 0 not in shape:
            shape = shape[1:]
    if len(shape) > 32 or any(d >= 1 << 62 for d in shape):  # a negative int64 reads as huge
        raise pw.WireError(f"blob of shape {shape}: not a shape")
    data = pw.floats(f[_DATA]) if _DATA in f else pw.doubles(f.get(_DOUBLE_DATA, []))
    if math.prod(shape) != data.size:  # exact: numpy's product would wrap around
        raise pw.WireError(f"blob of shape {shape} holds {data.size} values")
    return data.astype(np.float32).reshape(shape)


def read_binaryproto(path: str) -> np.ndarray:
    """A .binaryproto file (Caffe's mean image: a BlobProto, 1x3xHxW BGR); every length in
    it is checked against the file by the wire reader, so no size is trusted."""
    with open(path, "rb") as f:
        return read_blob(f.read(1 << 28))
