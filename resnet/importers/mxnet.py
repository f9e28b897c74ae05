"""MXNet `.params` files: the Gluon model zoo's `resnetN_v1` / `resnetN_v2` and the symbolic
zoo's `resnet-N-0000.params` (pre-activation), read with numpy alone.

The NDArray list format: a header (0x112, 0, count), each array as its magic, shape, context
and dtype then raw little-endian data, then the names. Gluon names are used with or without
their instance prefix (`resnetv10_stage1_conv0_weight`, `stage1_conv0_weight`) or as the
attribute paths of `save_parameters` (`features.4.0.body.0.weight`); 1x1 conv
biases (Gluon v1) are folded into their batch norms, as for the ONNX zoo's files. Symbolic
names are `arg:` / `aux:` prefixed; those nets use BatchNorm eps 2e-5 (folded exactly into the
variances) and ignore `bn_data`'s stored gamma (fix_gamma: it is 1).
"""
from __future__ import annotations

import numpy as np

from resnet.errors import ResnetError
from resnet.importers import IMPORTERS
from resnet.importers._gluon import BN_NAMES, PREFIX, dotted, fold_conv_biases
from resnet.importers.base import STYLES, Style, variance_for_v1_eps
from resnet.modelio.modelinfo import Recipe

LIST_MAGIC = 0x112
V1, V2, V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
DTYPES = {0: "<f4", 1: "<f8", 2: "<f2", 3: "u1", 4: "<i4", 5: "i1", 6: "<i8"}
SYMBOLIC_BN_EPS = 2e-5


class _Reader:
    def __init__(self, data: bytes, path: str):
        self.data, self.pos, self.path = data, 0, path

    def take(self, fmt: str, count: int = 1) -> np.ndarray:
        size = np.dtype(fmt).itemsize * count
        if self.pos + size > len(self.data):
            raise ResnetError(f"{self.path}: truncated MXNet params file")
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
    arrays = [_array(r) for _ in range(r.one("<u8"))]
    names = []
    for _ in range(r.one("<u8")):
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
        shape = tuple(r.take("<i8", r.one("<i4")))
    elif magic == V1:
        shape = tuple(r.take("<i8", r.one("<i4")))
    else:  # legacy: the magic was the dimension count, dims as u32
        shape = tuple(r.take("<u4", magic))
    if not shape:
        return np.zeros(0, np.float32)
    r.take("<i4", 2)  # device type and id
    code = r.one("<i4")
    if code not in DTYPES:
        raise ResnetError(f"{r.path}: unknown MXNet dtype code {code}")
    return r.take(DTYPES[code], int(np.prod(shape))).reshape(shape).copy()


def _symbolic(raw: dict) -> dict:
    """arg:/aux: names dotted; eps 2e-5 folded into the variances; bn_data's gamma is 1."""
    state = {dotted(k.split(":", 1)[1].replace("_moving_", "_running_")): v
             for k, v in raw.items()}
    for key in [k for k in state if k.endswith(".running_var")]:
        state[key] = variance_for_v1_eps(state[key], SYMBOLIC_BN_EPS)
    if "bn_data.gamma" in state:
        state["bn_data.gamma"] = np.ones_like(state["bn_data.gamma"])
    return state


def _symbolic_block(stage, j, _, branch, kind):
    """MXNet's symbolic pre-activation units: stage{s}_unit{u}_{bn1,conv1,bn2,...,sc}."""
    part = ("sc" if branch == "1" else
            {"preact": "bn1", "2a": "bn2", "2b": "bn3"}[branch] if kind == "bn" else
            {"2a": "conv1", "2b": "conv2", "2c": "conv3"}[branch])
    return f"stage{stage - 1}_unit{j}_{part}"


STYLES["mxnet symbolic"] = Style(  # arg:/aux: prefixes dropped by the importer
    "mxnet symbolic", {"conv": "conv0", "bn": "bn0"}, _symbolic_block, BN_NAMES, True,
    fc="fc1", extra={"input_bn": "bn_data", "final_bn": "bn1"}, variants=("v2",),
    recipe=Recipe("RGB", 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 256))  # bn_data normalizes


@IMPORTERS.register("mxnet")
class MxnetImporter:
    styles = ("gluon", "gluon (basic blocks)", "gluon v2", "gluon v2 (basic blocks)",
              "gluon structural", "gluon v2 structural", "mxnet symbolic")
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
