"""`--job=convert`: paddle.vision / PaddleClas / torchvision / timm weights -> a v1 directory.

Every parameter file of the spec gets exactly one foreign key, derived from its node name
(`res3_1_branch2b_conv` -> `layer2.0.conv2.weight`), so a checkpoint either fits the chosen
depth and variant completely or is refused with its first mismatches. The directory is
written beside OUT_DIR and renamed into place, so a failure never leaves half a model.
"""
from __future__ import annotations

import collections
import hashlib
import logging
import os
import pickle
import re
import shutil
import struct
import tempfile
import zipfile

import numpy as np

from . import modelinfo, params as params_io
from .errors import ResnetError
from .spec import DEPTHS, Spec, build

log = logging.getLogger("resnet")
FORMATS = ("paddle", "torchvision", "safetensors")
_BRANCH = re.compile(r"res(\d+)_(\d+)_branch(1|2a|2b|2c)_(conv|bn)$")


# ------------------------------------------------------------------ key names, from the spec

class Style:
    """One ecosystem's key naming: module path per node, parameter names, fc layout."""

    def __init__(self, name, stem, block, bn, fc_out_in, ignore=()):
        self.name, self._stem, self._block, self.bn = name, stem, block, bn
        self.fc_out_in, self.ignore = fc_out_in, ignore

    def module(self, node: str, block_index: dict) -> str:
        if node == "output":
            return "fc"
        if node.startswith("conv1_"):
            return self._stem[node[len("conv1_"):]]
        stage, j, branch, kind = _BRANCH.match(node).groups()
        return self._block(int(stage), int(j), block_index[f"res{stage}_{j}"], branch, kind)

    def ignored(self, key: str) -> bool:
        return any(key.endswith(s) for s in self.ignore)


_TORCH_BRANCH = {"1": ("downsample.0", "downsample.1"), "2a": ("conv1", "bn1"),
                 "2b": ("conv2", "bn2"), "2c": ("conv3", "bn3")}
_CLAS_BRANCH = {"1": "short", "2a": "conv0", "2b": "conv1", "2c": "conv2"}


def _torch_block(stage, j, _, branch, kind):
    return f"layer{stage - 1}.{j - 1}.{_TORCH_BRANCH[branch][kind == 'bn']}"


def _clas_block(stage, j, index, branch, kind):
    return f"blocks.{index}.{_CLAS_BRANCH[branch]}.{kind}"


_PADDLE_BN = {"w0": "weight", "wbias": "bias", "w1": "_mean", "w2": "_variance"}
_TORCH_BN = {"w0": "weight", "wbias": "bias", "w1": "running_mean", "w2": "running_var"}
STYLES = {
    "torchvision": Style("torchvision", {"conv": "conv1", "bn": "bn1"}, _torch_block, _TORCH_BN,
                         True, ignore=(".num_batches_tracked",)),
    "paddle.vision": Style("paddle.vision", {"conv": "conv1", "bn": "bn1"}, _torch_block,
                           _PADDLE_BN, False),
    "PaddleClas": Style("PaddleClas", {"conv": "stem.0.conv", "bn": "stem.0.bn"}, _clas_block,
                        _PADDLE_BN, False),
}
#: Naming styles tried for each input format, best fit wins (timm uses torchvision's names).
FORMAT_STYLES = {"paddle": ("paddle.vision", "PaddleClas"), "torchvision": ("torchvision",),
                 "safetensors": ("torchvision", "paddle.vision")}


def mapping(spec: Spec, style: Style) -> list[tuple[str, str, tuple, bool]]:
    """(v1 file name, foreign key, foreign shape, transposed) for every parameter of the spec."""
    blocks = [n.name[:-len("_addto")] for n in spec if n.op == "addto"]
    index = {b: i for i, b in enumerate(blocks)}
    rows = []
    for node in spec:
        for suffix, shape in node.params():
            module = style.module(node.name, index)
            if node.op == "bn":
                leaf = style.bn[suffix]
            else:
                leaf = "weight" if suffix == "w0" else "bias"
            flip = node.op == "fc" and suffix == "w0" and style.fc_out_in
            rows.append((f"_{node.name}.{suffix}", f"{module}.{leaf}",
                         tuple(reversed(shape)) if flip else tuple(shape), flip))
    return rows


def mismatches(state: dict, spec: Spec, style: Style) -> list[str]:
    """What keeps `state` from being exactly this spec's parameters, most telling first."""
    table = mapping(spec, style)
    wanted = {key for _, key, _, _ in table}
    missing = [key for _, key, _, _ in table if key not in state]
    wrong = [f"{key} has shape {tuple(np.shape(state[key]))}, expected {shape}"
             for _, key, shape, _ in table
             if key in state and tuple(np.shape(state[key])) != shape]
    extra = [k for k in state if k not in wanted and not style.ignored(k)]
    return wrong + [f"missing {k}" for k in missing] + [f"unexpected {k}" for k in extra]


def to_v1(state: dict, spec: Spec, style: Style) -> dict[str, np.ndarray]:
    """The v1 parameter arrays (float32, v1 layout) of a checkpoint that fits the spec."""
    out = {}
    for name, key, _, flip in mapping(spec, style):
        value = np.asarray(state[key], dtype=np.float32)
        out[name] = np.ascontiguousarray(value.T if flip else value)
    return out


def fit(state: dict, fmt: str, layer_num: int | None, variant: str, path: str):
    """(spec, style) that `state` fits exactly, or a ResnetError listing the first mismatches.

    Without layer_num the depth is read off the checkpoint. Keys and shapes are the same in
    v1 and v1.5, so the variant is the user's word (default v1.5, as these ecosystems use).
    """
    depths = [layer_num] if layer_num is not None else list(DEPTHS)
    tried = []
    for depth in depths:
        spec = build(depth, variant)
        for style_name in FORMAT_STYLES[fmt]:
            problems = mismatches(state, spec, STYLES[style_name])
            if not problems:
                return spec, STYLES[style_name]
            tried.append((len(problems), depth, style_name, problems))
    _, depth, style_name, problems = min(tried, key=lambda t: t[0])
    hint = ""
    if layer_num is not None:
        for other in DEPTHS:
            if other != layer_num and any(not mismatches(state, build(other, variant), STYLES[s])
                                          for s in FORMAT_STYLES[fmt]):
                hint = f" (it fits ResNet-{other}: pass --layer_num={other})"
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5
                                       else "")
    raise ResnetError(f"{path}: does not fit ResNet-{depth} ({style_name} names): "
                      f"{len(problems)} mismatches: {shown}{hint}")


# ------------------------------------------------------------------ reading checkpoints

def read_checkpoint(fmt: str, path: str) -> dict[str, np.ndarray]:
    """name -> numpy array from a .pdparams, .pth or .safetensors file, no foreign code run."""
    if not os.path.isfile(path):
        raise ResnetError(f"{path}: " + ("is a directory, expected a checkpoint file"
                                         if os.path.isdir(path) else "file not found"))
    looks = sniff(path)
    if looks and looks != fmt:
        raise ResnetError(f"{path}: looks like a {looks} checkpoint, not {fmt}: pass "
                          f"--from={looks}")
    if fmt == "paddle":
        from . import safepickle

        state = safepickle.load(path)
    elif fmt == "torchvision":
        state = read_torch(path)
    else:
        state = _read_safetensors(path)
    return _state_dict(state, path)


def sniff(path: str) -> str | None:
    """The format a file's first bytes say it is in (None: cannot tell; the reader decides)."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head.startswith(b"PK\x03\x04") or head[2:4] == b"\x8a\x0a":  # zip / legacy magic
        return "torchvision"
    if head[:1] == b"\x80":
        return "paddle"
    if len(head) > 8 and head[8:9] == b"{":  # u64 header length, then the JSON header
        return "safetensors"
    return None


def _read_safetensors(path: str) -> dict:
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise ResnetError("reading .safetensors needs the safetensors package: "
                          "pip install 'resnet[convert]' (or: pip install safetensors)") from None
    try:
        return load_file(path)
    except Exception as e:  # safetensors raises its own SafetensorError (and others) for bad files
        raise ResnetError(f"{path}: not a readable safetensors file ({e})") from None


def _state_dict(obj, path: str) -> dict[str, np.ndarray]:
    """The name -> array mapping inside a checkpoint (unwrapping {'state_dict': ...} and
    DataParallel's 'module.' prefix); other entries, such as Paddle's name table, dropped."""
    if not isinstance(obj, dict):
        raise ResnetError(f"{path}: holds a {type(obj).__name__}, expected a dict of tensors "
                          "(a state_dict)")
    if not any(isinstance(v, np.ndarray) for v in obj.values()):
        for key in ("state_dict", "model", "model_state", "net"):
            if isinstance(obj.get(key), dict):
                log.info("using the %r entry of %s", key, path)
                return _state_dict(obj[key], path)
        raise ResnetError(f"{path}: holds no tensors")
    state = {str(k): v for k, v in obj.items() if isinstance(v, np.ndarray)}
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


# ------------------------------------------------------------------ writing the directory

def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def check_out_dir(out_dir: str, overwrite: bool = False) -> None:
    """OUT_DIR may be new or empty; a model already there is replaced only with --overwrite."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ResnetError(f"{out_dir}: exists and is not a directory")
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise ResnetError(f"{out_dir}: already exists and is not empty; pass --overwrite to "
                          "replace it")


def write_model(out_dir: str, spec: Spec, values: dict, info: modelinfo.ModelInfo,
                overwrite: bool = False) -> None:
    """Write the v1 files and model.json to a folder beside OUT_DIR, then rename it into place."""
    out_dir = os.path.abspath(out_dir)
    check_out_dir(out_dir, overwrite)
    parent, base = os.path.split(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{base}.converting-", dir=parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would stick to the model
        params_io.save_model(tmp, spec, values)
        modelinfo.write(tmp, info)
        if os.path.exists(out_dir):
            old = tempfile.mkdtemp(prefix=f".{base}.replaced-", dir=parent)
            os.rename(out_dir, os.path.join(old, base))
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def convert(fmt: str, path: str, out_dir: str, layer_num: int | None = None,
            variant: str | None = None, overwrite: bool = False) -> modelinfo.ModelInfo:
    """Convert one checkpoint; returns what was written to OUT_DIR/model.json."""
    if fmt not in FORMATS:
        raise ResnetError(f"unknown --from {fmt!r}: choose one of {', '.join(FORMATS)}")
    variant = variant or "v1.5"
    build(layer_num or 50, variant)  # an unsupported depth or variant fails before reading
    check_out_dir(out_dir, overwrite)
    state = read_checkpoint(fmt, path)
    spec, style = fit(state, fmt, layer_num, variant, path)
    values = to_v1(state, spec, style)
    info = modelinfo.ModelInfo(
        spec.layer_num, spec.variant, modelinfo.IMAGENET_RGB, "imagenet",
        {"format": fmt, "names": style.name, "file": os.path.basename(path),
         "sha256": sha256(path)})
    write_model(out_dir, spec, values, info, overwrite)
    return info


def convert_job(args) -> int:
    if not args.from_format:
        raise ResnetError(f"--job=convert needs --from: one of {', '.join(FORMATS)}")
    if not args.input:
        raise ResnetError("--job=convert needs --input=FILE (the checkpoint to convert)")
    if not args.model:
        raise ResnetError("--job=convert needs --model=OUT_DIR (the v1 directory to write)")
    info = convert(args.from_format, args.input, args.model, args.layer_num, args.variant,
                   args.overwrite)
    log.info("wrote ResNet-%d (%s, %s names) to %s with %s", info.layer_num, info.variant,
             info.source["names"], args.model, modelinfo.MODEL_JSON)
    return 0


# ------------------------------------------------------------------ .pth without torch
# torch.save writes a zip (`*/data.pkl` + `*/data/<key>` raw storages) or, before torch 1.6,
# a stream of pickles followed by the storages. The pickle names torch's rebuild functions and
# storage types; a restricted unpickler maps exactly those onto numpy and refuses the rest.

TORCH_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {"FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2",
                   "BFloat16Storage": "bf16", "LongStorage": "i8", "IntStorage": "i4",
                   "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
                   "BoolStorage": "?"}


class _StorageType:
    def __init__(self, name):
        self.name, self.dtype = name, _STORAGE_DTYPES[name]


class _Storage:
    """A storage named by the pickle; its bytes are attached once read (`data`)."""

    def __init__(self, key, dtype, numel, base=None, offset=0):
        self.key, self.dtype, self.numel, self.base, self.offset = key, dtype, numel, base, offset
        self.data = None

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
        flat = self.storage.array(order)
        if any(v == 0 for v in self.size):
            return np.zeros(self.size, flat.dtype)
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
                obj, storages, order = _read_torch_zip(z)
        else:
            with open(path, "rb") as f:
                obj, storages, order = _read_torch_legacy(f)
        return _materialize(obj, order)
    except pickle.UnpicklingError as e:
        if str(e).startswith("refused global"):
            raise ResnetError(f"{path}: unsafe pickle: {e}; a .pth may hold only tensors "
                              "(save model.state_dict(), not the model)") from None
        raise ResnetError(f"{path}: not a readable PyTorch checkpoint ({e})") from None
    except ResnetError as e:
        raise ResnetError(f"{path}: {e}") from None
    except (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError, OSError,
            zipfile.BadZipFile, struct.error) as e:
        raise ResnetError(f"{path}: not a readable PyTorch checkpoint (truncated or corrupt: "
                          f"{type(e).__name__}: {e})") from None


def _read_torch_zip(z):
    names = z.namelist()
    pkl = next((n for n in names if n.endswith("data.pkl") and n.count("/") == 1), None)
    if pkl is None:
        raise ValueError("no data.pkl in the archive")
    prefix = pkl[:-len("data.pkl")]
    order = "<"
    if prefix + "byteorder" in names and z.read(prefix + "byteorder").strip() == b"big":
        order = ">"
    storages = {}
    with z.open(pkl) as f:
        obj = _TorchUnpickler(f, storages).load()
    for st in storages.values():
        if st.base is None:
            st.data = z.read(f"{prefix}data/{st.key}")
    return obj, storages, order


def _read_torch_legacy(f):
    head = _TorchUnpickler(f, {})
    if head.load() != TORCH_MAGIC:
        raise ValueError("not a torch.save file (no zip archive, no legacy magic number)")
    head.load()  # protocol version
    info = head.load()
    order = "<" if not isinstance(info, dict) or info.get("little_endian", True) else ">"
    storages = {}
    obj = _TorchUnpickler(f, storages).load()
    keys = _TorchUnpickler(f, {}).load()
    for key in keys:
        st = storages[str(key)]
        count = int.from_bytes(f.read(8), "little")
        nbytes = count * (2 if st.dtype == "bf16" else np.dtype(st.dtype).itemsize)
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
