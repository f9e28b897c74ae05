""".pth checkpoints read without torch.

torch.save writes a zip (`*/data.pkl` + `*/data/<key>` raw storages) or, before torch 1.6, a
stream of pickles followed by the storages. The pickle names torch's rebuild functions and
storage types; a restricted unpickler maps exactly those onto numpy and refuses the rest.
"""
from __future__ import annotations

import collections
import io
import math
import os
import pickle
import struct
import zipfile
import zlib

import numpy as np

from resnet.errors import ResnetError, first_line
from resnet.importers._archive import read_member
from resnet.modelio.safepickle import check_lengths

TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {"FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2",
                   "BFloat16Storage": "bf16", "LongStorage": "i8", "IntStorage": "i4",
                   "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
                   "BoolStorage": "?"}
#: a torch.save pickle (data.pkl) holds names and tensor records, never the data itself
MAX_PICKLE = 1 << 26
#: no storage of a ResNet checkpoint comes near this (ResNet-152's largest is 9 MB)
MAX_STORAGE = 1 << 30


class _StorageType:
    def __init__(self, name):
        self.name, self.dtype = name, _STORAGE_DTYPES[name]


class _Storage:
    """A storage named by the pickle; its bytes are attached once read (`data`)."""

    def __init__(self, key, dtype, numel, base=None, offset=0):
        self.key, self.dtype, self.numel, self.base, self.offset = key, dtype, numel, base, offset
        self.data = None

    def nbytes(self) -> int:
        return self.numel * (2 if self.dtype == "bf16" else np.dtype(self.dtype).itemsize)

    def array(self, order: str) -> np.ndarray:
        if self.base is not None:  # a legacy view into another storage
            return self.base.array(order)[self.offset:self.offset + self.numel]
        if self.dtype == "bf16":
            raw = np.frombuffer(self.data, dtype=order + "u2")
            return (raw.astype(np.uint32) << 16).view(np.float32)
        dtype = np.dtype(self.dtype).newbyteorder(order) if len(self.dtype) > 1 \
            else np.dtype(self.dtype)
        return np.frombuffer(self.data, dtype=dtype)


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        if not (isinstance(storage, _Storage) and isinstance(offset, int)
                and isinstance(size, tuple) and isinstance(stride, tuple)
                and len(size) == len(stride)
                and all(isinstance(v, int) and v >= 0 for v in size + stride)):
            raise pickle.UnpicklingError("malformed tensor record")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def array(self, order: str) -> np.ndarray:
        """The tensor's values, copied out of its storage only after its size (and the
        extent its strides reach) is known to fit that storage: a stride-0 record cannot
        make a 1-value storage into gigabytes."""
        flat = self.storage.array(order)
        if any(v == 0 for v in self.size):
            return np.zeros(self.size, flat.dtype)
        if math.prod(self.size) > flat.size:
            raise ResnetError(f"a tensor of size {self.size} has more values than its "
                              f"storage's {flat.size}")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if self.offset < 0 or last >= flat.size:
            raise ResnetError("a tensor reaches past the end of its storage")
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], self.size, [s * flat.itemsize for s in self.stride])
        return np.array(view)


def _rebuild_tensor(storage, offset, size, stride, *_):
    return _Tensor(storage, offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, *_):
    return data


_TORCH_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _TorchUnpickler(pickle.Unpickler):
    """Admits torch's tensor records and OrderedDict; any other global is refused."""

    def __init__(self, f, storages):
        super().__init__(f, encoding="latin1")
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) not in _TORCH_GLOBALS:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return _TORCH_GLOBALS[module, name]

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.80}")
        kind, key, numel = pid[1], str(pid[2]), int(pid[4])
        if numel < 0:
            raise pickle.UnpicklingError(f"storage {key} of {numel} values")
        root = self.storages.setdefault(key, _Storage(key, kind.dtype, numel))
        view = pid[5] if len(pid) > 5 else None
        if view:  # legacy format: (view key, offset, size) into the root storage
            view_key, offset, size = view
            return self.storages.setdefault(f"{key}/{view_key}",
                                            _Storage(view_key, kind.dtype, size, root, offset))
        return root


def read_torch(path: str) -> dict:
    """A torch.save'd object (zip or legacy format) with tensors as float/int numpy arrays."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                obj, storages, order = _read_torch_zip(z, path)
        else:
            with open(path, "rb") as f:
                obj, storages, order = _read_torch_legacy(f)
        return _materialize(obj, order)
    except pickle.UnpicklingError as e:
        if str(e).startswith("refused global"):
            raise ResnetError(f"{path}: unsafe pickle: {e}; a .pth may hold only tensors "
                              "(save model.state_dict(), not the model)") from None
        raise ResnetError(f"{path}: not a readable PyTorch checkpoint "
                          f"({first_line(str(e))})") from None
    except ResnetError as e:
        text = str(e)
        raise ResnetError(text if text.startswith(f"{path}: ") else f"{path}: {text}") \
            from None
    except (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, OSError,
            zipfile.BadZipFile, struct.error, zlib.error, RecursionError,
            NotImplementedError) as e:
        raise ResnetError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt: "
                          f"{type(e).__name__}: {first_line(str(e))})") from None


def _read_torch_zip(z, path):
    names = z.namelist()
    pkl = next((n for n in names if n.endswith("data.pkl") and n.count("/") == 1), None)
    if pkl is None:
        raise ValueError("no data.pkl in the archive")
    prefix = pkl[:-len("data.pkl")]
    order = "<"
    if prefix + "byteorder" in names and \
            read_member(z, prefix + "byteorder", path, 64).strip() == b"big":
        order = ">"
    storages = {}
    data = read_member(z, pkl, path, MAX_PICKLE)
    obj = _load(io.BytesIO(data), len(data), storages)
    for st in storages.values():
        if st.base is None:
            name, nbytes = f"{prefix}data/{st.key}", st.nbytes()
            if nbytes > MAX_STORAGE:
                raise ResnetError(f"{path}: storage {name} declares {st.numel} values, "
                                  "more than any tensor of a network this project builds; refused")
            st.data = read_member(z, name, path, nbytes)
            if len(st.data) != nbytes:
                raise ResnetError(f"{path}: storage {name} holds {len(st.data)} bytes, its "
                                  f"record says {nbytes}")
    return obj, storages, order


def _load(f, size: int, storages: dict):
    """One pickle at `f`'s position, its declared lengths bounded by the `size` bytes left."""
    check_lengths(f, size)
    return _TorchUnpickler(f, storages).load()


def _read_torch_legacy(f):
    size = os.fstat(f.fileno()).st_size

    def left():
        return size - f.tell()

    if _load(f, left(), {}) != TORCH_MAGIC:
        raise ValueError("not a torch.save file (no zip archive, no legacy magic number)")
    _load(f, left(), {})  # protocol version
    info = _load(f, left(), {})
    order = "<" if not isinstance(info, dict) or info.get("little_endian", True) else ">"
    storages = {}
    obj = _load(f, left(), storages)
    keys = _load(f, left(), {})
    if not isinstance(keys, list):
        raise ValueError("the storage key list is not a list")
    for key in keys:
        st = storages[str(key)]
        count = int.from_bytes(f.read(8), "little")
        nbytes = count * (2 if st.dtype == "bf16" else np.dtype(st.dtype).itemsize)
        if nbytes > left():
            raise EOFError(f"storage {key} declares {nbytes} bytes, {left()} are left")
        st.data = f.read(nbytes)
        if len(st.data) != nbytes:
            raise EOFError(f"storage {key} is cut short")
    return obj, storages, order


def _materialize(obj, order):
    if isinstance(obj, _Tensor):
        return obj.array(order)
    if isinstance(obj, dict):
        return {k: _materialize(v, order) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialize(v, order) for v in obj)
    return obj
