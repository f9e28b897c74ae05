"""The ONNX model zoo's ResNets (`resnet{18,34,50,101,152}-v1-7.onnx` and `-v2-7.onnx`),
converted from MXNet Gluon: v1 is v1 strides, max pool pad 1 (the `v1-pad1` variant) with
biases on the 1x1 body convs; v2 is the pre-activation network (`v2`); both RGB /255
mean/std. Also its VGGs: Gluon's (`vgg16-7`, `vgg16-bn-7`, `vgg19-7`, `vgg19-bn-7`,
`vgg16-12`; vgg_gluon.py) and caffe2's `vgg19-caffe2` (vgg_caffe.py).

Only the initializers are read (the `onnx` package, no graph is run). Their names are
Gluon's under an instance prefix (`resnetv17_stage1_conv0_weight`, `vgg0_conv0_weight`),
stripped here; each ResNet conv bias is folded into the batch norm that follows it (BN(conv
+ b) is BN(conv) with its running mean moved by b), so the weights are exactly a v1-pad1
network. caffe2's names (`conv1_1_w_0`, `fc8_b_0`) become `conv1_1.weight`, `fc8.bias`.
Integer initializers are shapes (caffe2's Reshape target `OC2_DUMMY_1`), not weights, and are
left out; a batch norm whose node says an epsilon other than 1e-5 has it folded exactly into
its variance. Anything else (another graph) fits nothing and is refused with its first
mismatching names; a quantized model (QLinearConv, QuantizeLinear, ... as the zoo's
`-int8` and `-qdq` files) is refused with the way to run one in int8.

Initializers kept as external data are read here, never by onnx (which resolves their
location against the working directory): only from a regular file inside the .onnx file's
own folder, named relatively, within its bounds. Each initializer's dims must match its data
before numpy sees it.
"""
from __future__ import annotations

import math
import os
import re
import stat

import numpy as np

from resnet.common.files import open_existing
from resnet.errors import ResnetError, file_error
from resnet.importers import IMPORTERS
from resnet.importers._gluon import PREFIX, dotted, fold_conv_biases
from resnet.importers.base import variance_for_v1_eps
from resnet.models.ops import DEFAULT_EPS

#: TensorProto data types an initializer of weights may have -> numpy dtype, and the typed
#: field that holds their values when they are not raw bytes
_DTYPES = {1: ("<f4", "float_data"), 11: ("<f8", "double_data"), 10: ("<f2", "int32_data"),
           7: ("<i8", "int64_data"), 6: ("<i4", "int32_data"), 5: ("<i2", "int32_data"),
           3: ("i1", "int32_data"), 2: ("u1", "int32_data"), 4: ("<u2", "int32_data"),
           12: ("<u4", "uint64_data"), 13: ("<u8", "uint64_data"), 9: ("?", "int32_data")}
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_SHAPES = {6, 7}  # int32, int64: shapes and axes of reshapes, never weights
#: operators of quantized graphs (QOperator and QDQ forms, integer convs and matmuls)
_QUANTIZED = ("QLinear", "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
              "ConvInteger", "MatMulInteger", "QGemm")
_CAFFE2_LEAF = re.compile(r"^(.+)_([wb])_0$")  # caffe2's conv1_1_w_0, fc8_b_0


@IMPORTERS.register("onnx")
class OnnxZooImporter:
    suffixes = (".onnx",)
    variants = ("v1-pad1", "v2")

    @staticmethod
    def looks_like(head: bytes) -> bool:
        # ModelProto: ir_version (field 1, varint) then producer_name (field 2) or opset
        return len(head) > 2 and head[0] == 0x08 and head[2] in (0x12, 0x1A, 0x22, 0x3A, 0x42)

    @staticmethod
    def read(path: str) -> dict:
        try:
            import onnx
            from onnx import numpy_helper
        except ImportError:
            raise ResnetError("--from=onnx needs the onnx package: pip install onnx (or "
                              "pip install -e \".[export]\")") from None
        try:
            model = onnx.load(path, load_external_data=False)
        except Exception as e:  # DecodeError and friends: the file is not an ONNX model
            raise ResnetError(f"{path}: not an ONNX model ({type(e).__name__})") from None
        _refuse_quantized(model, path)
        eps = _bn_eps(model, path)
        state = {}
        for tensor in model.graph.initializer:
            name = tensor.name  # bytes where the file's name is not UTF-8
            name = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
            where = f"{path}: initializer {name!r:.100}"
            _check_tensor(tensor, path, where)
            if tensor.data_type in _SHAPES and len(tensor.dims) <= 1:
                continue
            try:
                value = numpy_helper.to_array(tensor)
            except Exception as e:  # a tensor the checks above let through but onnx can't read
                raise ResnetError(f"{where}: unreadable ({type(e).__name__})") from None
            if name in eps:
                value = variance_for_v1_eps(value, eps[name])
            state[_key(name)] = value
        if not state:
            raise ResnetError(f"{path}: an ONNX model without weights (initializers)")
        return fold_conv_biases(state, path)


def _key(name: str) -> str:
    """An initializer's name as the styles spell it: Gluon's prefix dropped and its leaf
    dotted (`vgg0_conv0_weight` -> `conv0.weight`), caffe2's `_w_0` / `_b_0` made leaves."""
    if m := _CAFFE2_LEAF.match(name):
        return f"{m[1]}.{'weight' if m[2] == 'w' else 'bias'}"
    return dotted(PREFIX.sub("", name))


def _refuse_quantized(model, path: str) -> None:
    """A quantized graph's integer weights and scales are not a network's float weights."""
    ops = sorted({n.op_type for n in model.graph.node if n.op_type.startswith(_QUANTIZED)})
    if ops:
        raise ResnetError(f"{path}: a quantized ONNX model ({', '.join(ops[:4])} operators); "
                          "convert the float32 model it was made from (for the zoo's "
                          "vgg16-12-int8 / -qdq: vgg16-12.onnx) and run it with "
                          "--precision=int8")


def _bn_eps(model, path: str) -> dict[str, float]:
    """The epsilon of each BatchNormalization, by the name of its variance initializer."""
    out = {}
    for node in model.graph.node:
        if node.op_type != "BatchNormalization" or len(node.input) < 5:
            continue
        value = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        if not (math.isfinite(value) and value >= 0):
            raise ResnetError(f"{path}: batch norm {node.name!r:.100} has epsilon {value}, not "
                              "a finite number >= 0")
        if np.float32(value) != np.float32(DEFAULT_EPS):  # the attribute is a float32
            out[node.input[4]] = float(value)
    return out


def _check_tensor(tensor, path: str, where: str) -> None:
    """Refuse an initializer whose type is not a plain number, whose dims are negative, or
    whose values do not number exactly what its dims say; external data is read (from the
    .onnx file's own folder only) into the tensor first, so nothing else opens a file."""
    if tensor.data_type not in _DTYPES:
        raise ResnetError(f"{where}: data type {tensor.data_type} is not a plain number type")
    dims = list(tensor.dims)
    if any(d < 0 for d in dims):
        raise ResnetError(f"{where}: negative dimension in {dims}")
    count = math.prod(dims)
    dtype, field = _DTYPES[tensor.data_type]
    itemsize = np.dtype(dtype).itemsize
    if tensor.data_location == _EXTERNAL:
        tensor.raw_data = _external_data(tensor, path, where, count * itemsize)
        tensor.data_location = 0
        del tensor.external_data[:]
    elif tensor.external_data:
        raise ResnetError(f"{where}: external_data entries on a tensor not marked EXTERNAL")
    if tensor.HasField("raw_data"):
        if len(tensor.raw_data) != count * itemsize:
            raise ResnetError(f"{where}: shape {dims} needs {count * itemsize} bytes, "
                              f"raw_data holds {len(tensor.raw_data)}")
    elif len(getattr(tensor, field)) != count:
        raise ResnetError(f"{where}: shape {dims} needs {count} values, {field} holds "
                          f"{len(getattr(tensor, field))}")


def _external_data(tensor, path: str, where: str, nbytes: int) -> bytes:
    """The bytes of an EXTERNAL initializer. Its file must be a regular file inside the .onnx
    file's own folder, named relatively without '..' and not leaving that folder through a
    symlink (never resolved against the working directory), and offset + length must lie
    within it; anything else could copy a file the user never named into the model."""
    info = {e.key: e.value for e in tensor.external_data}
    location = info.get("location", "")
    where = f"{where}: external data {location!r:.200}"
    if not location or "\0" in location:
        raise ResnetError(f"{where}: no file named; refused")
    parts = location.replace("\\", "/").split("/")
    if os.path.isabs(location) or location.startswith(("/", "\\")) or ".." in parts:
        raise ResnetError(f"{where}: not a plain relative path inside the model's folder; "
                          "refused")
    folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    target = os.path.realpath(os.path.join(folder, location))
    if os.path.commonpath([folder, target]) != folder:
        raise ResnetError(f"{where}: leads out of the model's folder {folder} (a symlink); "
                          "refused")
    try:
        offset, length = int(info.get("offset") or 0), info.get("length")
        length = nbytes if length in (None, "") else int(length)
    except ValueError:
        raise ResnetError(f"{where}: offset or length is not a number") from None
    if offset < 0 or length != nbytes:
        raise ResnetError(f"{where}: offset {offset} and length {length} do not fit the "
                          f"tensor's {nbytes} bytes")
    try:
        if not stat.S_ISREG(os.stat(target).st_mode):  # a FIFO would block the open
            raise ResnetError(f"{where}: not a regular file; refused")
        with open_existing(target, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if offset + length > size:
                raise ResnetError(f"{where}: offset {offset} + length {length} is past the "
                                  f"end of its {size}-byte file")
            f.seek(offset)
            data = f.read(length)
    except OSError as e:
        raise ResnetError(f"{where}: {file_error(target, e, 'expected a data file')}") from None
    if len(data) != length:
        raise ResnetError(f"{where}: file shorter than offset + length")
    return data
