"""MXNet `.params` files: the Gluon model zoo's `resnetN_v1` / `resnetN_v2` and `vgg16[_bn]` /
`vgg19[_bn]` (vgg_gluon.py), the symbolic zoo's `resnet-N-0000.params` (pre-activation) and
its VGGs converted from Caffe (`vgg16-0000.params`, vgg_caffe.py), read with numpy alone.

The NDArray list format: a header (0x112, 0, count), each array as its magic, shape, context
and dtype then raw little-endian data, then the names. Gluon names are used with or without
their instance prefix (`resnetv10_stage1_conv0_weight`, `stage1_conv0_weight`) or as the
attribute paths of `save_parameters` (`features.4.0.body.0.weight`); 1x1 conv biases
(Gluon v1) are folded into their batch norms, as for the ONNX zoo's files (a VGG's conv
biases are its own parameters and stay). Symbolic names are `arg:` / `aux:` prefixed; the
symbolic ResNets use BatchNorm eps 2e-5 (folded exactly into the variances) and ignore
`bn_data`'s stored gamma (fix_gamma: it is 1).
"""
from __future__ import annotations

import math

import numpy as np

from resnet.errors import ResnetError
from resnet.importers import IMPORTERS
from resnet.importers._gluon import PREFIX, dotted, fold_conv_biases
from resnet.importers.base import variance_for_v1_eps

LIST_MAGIC = 0x112
V1, V2, V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
DTYPES = {0: "<f4", 1: "<f8", 2: "<f2", 3: "u1", 4: "<i4", 5: "i1", 6: "<i8"}
SYMBOLIC_BN_EPS = 2e-5
MAX_NDIM = 32  # MXNet's own limit on an NDArray's dimensions


class _Reader:
    def __init__(self, data: bytes, path: str):
        self.data, self.pos, self.path = data, 0, path

    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, fmt: str, count: int = 1) -> np.ndarray:
        """`count` values of `fmt` at the current position; every count is checked against
        the bytes left before anything is read, so a damaged count cannot loop or allocate."""
        size = np.dtype(fmt).itemsize * count
        if count < 0 or self.pos + size > len(self.data):
            raise ResnetError(f"{self.path}: truncated MXNet params file (at byte {self.pos}, "
                              f"{count} values of {size // max(count, 1)} bytes wanted, "
                              f"{self.left()} bytes left)")
        out = np.frombuffer(self.data, fmt, count, self.pos)
        self.pos += size
        return out

    def one(self, fmt: str) -> int:
        return int(self.take(fmt)[0])


def read_params(path: str) -> dict[str, np.ndarray]:
    """name -> array of an MXNet NDArray list file."""
    with open(path, "rb") as f:
        r = _Reader(f.read(), path)
    if len(r.data) < 24 or r.one("<u8") != LIST_MAGIC:
        raise ResnetError(f"{path}: not an MXNet params file (no NDArray list header)")
    r.one("<u8")
    count = r.one("<u8")
    if count > r.left() // 8:  # an array takes at least its 4-byte magic and 4-byte ndim
        raise ResnetError(f"{path}: declares {count} arrays in {len(r.data)} bytes; damaged "
                          "MXNet params file")
    arrays = [_array(r) for _ in range(count)]
    names = []
    count = r.one("<u8")
    if count > r.left() // 8:  # each name takes at least its 8-byte length
        raise ResnetError(f"{path}: declares {count} names in {r.left()} bytes left; damaged "
                          "MXNet params file")
    for _ in range(count):
        size = r.one("<u8")
        names.append(bytes(r.take("u1", size)).decode("utf-8", "replace"))
    if len(names) != len(arrays):
        raise ResnetError(f"{path}: {len(arrays)} arrays but {len(names)} names")
    return dict(zip(names, arrays))


def _array(r: _Reader) -> np.ndarray:
    magic = r.one("<u4")
    if magic in (V2, V3):
        if r.one("<i4") != 0:
            raise ResnetError(f"{r.path}: sparse arrays are not model weights")
        shape = tuple(int(d) for d in r.take("<i8", _ndim(r, r.one("<i4"))))
    elif magic == V1:
        shape = tuple(int(d) for d in r.take("<i8", _ndim(r, r.one("<i4"))))
    else:  # legacy: the magic was the dimension count, dims as u32
        shape = tuple(int(d) for d in r.take("<u4", _ndim(r, magic)))
    if any(d < 0 for d in shape):
        raise ResnetError(f"{r.path}: array of shape {shape}: negative dimension")
    if math.prod(max(d, 1) for d in shape) > 1 << 48:  # numpy cannot shape even an
        raise ResnetError(f"{r.path}: array of shape {shape}: too large")  # empty one
    if not shape:
        return np.zeros(0, np.float32)
    r.take("<i4", 2)  # device type and id
    code = r.one("<i4")
    if code not in DTYPES:
        raise ResnetError(f"{r.path}: unknown MXNet dtype code {code}")
    count = math.prod(shape)
    if count * np.dtype(DTYPES[code]).itemsize > r.left():
        raise ResnetError(f"{r.path}: array of shape {shape} needs more bytes than the "
                          f"{r.left()} left in the file; damaged MXNet params file")
    return r.take(DTYPES[code], count).reshape(shape).copy()


def _ndim(r: _Reader, ndim: int) -> int:
    if not 0 <= ndim <= MAX_NDIM:
        raise ResnetError(f"{r.path}: an array with {ndim} dimensions (at byte {r.pos}); not "
                          "an MXNet params file, or a damaged one")
    return ndim


def _symbolic(raw: dict) -> dict:
    """arg:/aux: names dotted; eps 2e-5 folded into the variances; bn_data's gamma is 1."""
    state = {dotted(k.split(":", 1)[1].replace("_moving_", "_running_")): v
             for k, v in raw.items()}
    for key in [k for k in state if k.endswith(".running_var")]:
        state[key] = variance_for_v1_eps(state[key], SYMBOLIC_BN_EPS)
    if "bn_data.gamma" in state:
        state["bn_data.gamma"] = np.ones_like(state["bn_data.gamma"])
    return state


@IMPORTERS.register("mxnet")
class MxnetImporter:
    suffixes = (".params",)
    variants = ("v1-pad1", "v2")

    @staticmethod
    def looks_like(head: bytes) -> bool:
        return head[:16] == LIST_MAGIC.to_bytes(8, "little") + bytes(8)

    @staticmethod
    def read(path: str) -> dict:
        raw = read_params(path)
        if raw and all(k.startswith(("arg:", "aux:")) for k in raw):
            return _symbolic(raw)
        state = {dotted(PREFIX.sub("", k)): v for k, v in raw.items()}
        return fold_conv_biases(state, path)
