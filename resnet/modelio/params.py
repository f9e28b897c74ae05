"""v1 parameter directories: one raw float32 file per parameter behind a 16-byte header.

The header is little-endian int32 format (0), uint32 value size (4), uint64 element count,
exactly as v1's `struct.pack("IIQ", 0, 4, size)`. Every file is validated against the spec
so a wrong, truncated or mismatched model is refused with the file named.
"""
from __future__ import annotations

import os
import struct

import numpy as np

from resnet.common.files import atomic_file, sha256_files
from resnet.errors import ResnetError, file_error
from resnet.models.graph import Spec
from resnet.models.ops import DEFAULT_EPS, eps as bn_eps

HEADER = struct.Struct("<iIQ")
FORMAT, VALUE_SIZE = 0, 4


class ModelError(ResnetError):
    """A model directory or parameter file that does not fit the network."""


def write_param(path: str, array: np.ndarray) -> None:
    """Write one parameter file (header + row-major float32), atomically."""
    data = np.ascontiguousarray(array, dtype="<f4")
    with atomic_file(path, fsync=False) as f:  # a whole model is fsynced by its writer's rename
        f.write(HEADER.pack(FORMAT, VALUE_SIZE, data.size))
        f.write(data.tobytes())


def read_param(path: str, shape: tuple | None = None) -> np.ndarray:
    """Read and validate one parameter file; `shape`, when given, fixes the expected count."""
    expected = int(np.prod(shape)) if shape is not None else None
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(HEADER.size)
            if len(head) < HEADER.size:
                raise ModelError(f"{path}: truncated header: file has {size} bytes, "
                                 f"expected a {HEADER.size}-byte header")
            fmt, vsize, count = HEADER.unpack(head)
            if fmt != FORMAT or vsize != VALUE_SIZE:
                raise ModelError(f"{path}: bad header: expected format {FORMAT} and value size "
                                 f"{VALUE_SIZE}, found format {fmt} and value size {vsize}")
            if expected is not None and count != expected:
                raise ModelError(f"{path}: wrong element count: expected {expected} "
                                 f"for shape {tuple(shape)}, found {count} in the header")
            want = HEADER.size + VALUE_SIZE * count
            if size != want:
                raise ModelError(f"{path}: wrong file length: expected {want} bytes "
                                 f"for {count} values, found {size}")
            data = np.fromfile(f, dtype="<f4", count=count)
    except OSError as e:
        raise ModelError(file_error(path, e, "expected a parameter file",
                                    "missing parameter file")) from None
    data = data.astype(np.float32, copy=False)
    problem = value_problem(data)
    if problem:
        raise ModelError(f"{path}: {problem}")
    return data.reshape(shape) if shape is not None else data


def value_problem(values: np.ndarray, variance: bool = False,
                  finite: bool = True, eps: float = DEFAULT_EPS) -> str | None:
    """Why these parameter values cannot be run (None when they can): NaN or Inf anywhere,
    or for a batch norm's variance a value that makes variance + eps <= 0 (a NaN or infinite
    output for every image, which no later check would pin on the weights). `finite=False`
    skips the first check, for values read_param has checked already."""
    finite = np.isfinite(values) if finite or variance else None
    if finite is not None and not finite.all():
        bad = np.flatnonzero(~finite.reshape(-1))
        return (f"{bad.size} non-finite values (NaN or Inf), the first at index {bad[0]} "
                f"({values.reshape(-1)[bad[0]]})")
    if variance:
        low = np.flatnonzero(values.reshape(-1) + np.float32(eps) <= 0)
        if low.size:
            return (f"batch norm variance + eps <= 0 at {low.size} values, the first at index "
                    f"{low[0]} ({values.reshape(-1)[low[0]]})")
    return None


def variance_files(spec: Spec) -> dict[str, float]:
    """The parameter files that hold batch norm variances (w2 of every batch norm node), each
    with its node's epsilon."""
    return {f"_{node.name}.w2": bn_eps(node) for node in spec if node.op == "bn"}


def check_values(spec: Spec, params: dict[str, np.ndarray], where, finite: bool = True) -> None:
    """Refuse (ModelError naming `where(file name)`) any parameter that value_problem finds
    fault with: what load_model and save_model run, and convert before writing."""
    variances = variance_files(spec)
    for name, _ in spec.param_files():
        if not finite and name not in variances:
            continue
        problem = value_problem(np.asarray(params[name], np.float32), name in variances,
                                eps=variances.get(name, DEFAULT_EPS))
        if problem:
            raise ModelError(f"{where(name)}: {problem}")


def model_checksum(model_dir: str, spec: Spec) -> str:
    """sha256 over the spec's parameter files, in spec order: identifies the weights a run
    used (manifests, the engine cache)."""
    return sha256_files(model_dir, [name for name, _ in spec.param_files()])


def load_model(model_dir: str, spec: Spec) -> dict[str, np.ndarray]:
    """All parameters the spec needs, keyed by file name; every missing file listed at once."""
    if not os.path.isdir(model_dir):
        raise ModelError(f"{model_dir}: model directory not found")
    files = spec.param_files()
    missing = [name for name, _ in files if not os.path.isfile(os.path.join(model_dir, name))]
    if missing:
        shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise ModelError(f"{model_dir}: {len(missing)} of {len(files)} parameter files missing "
                         f"for {spec.family.short(spec)}: {shown}{_depth_hint(model_dir, spec)}")
    expected = {name for name, _ in files}
    extra = sorted(_param_names_in(model_dir) - expected)
    if extra:
        raise ModelError(f"{model_dir}: {len(extra)} parameter files are not part of "
                         f"{spec.family.short(spec)} (e.g. {', '.join(extra[:3])})"
                         f"{_depth_hint(model_dir, spec)}")
    values = {name: read_param(os.path.join(model_dir, name), shape) for name, shape in files}
    check_values(spec, values, lambda name: os.path.join(model_dir, name), finite=False)
    return values


def _param_names_in(model_dir: str) -> set[str]:
    return {n for n in os.listdir(model_dir)
            if n.startswith("_") and n.rsplit(".", 1)[-1] in ("w0", "w1", "w2", "wbias")}


def detect_arch(model_dir: str) -> str | None:
    """The architecture whose parameter files the directory holds exactly, or None. ResNet
    v1, v1-pad1 and v1.5 share file names: those are taken for the v1 zoo's (v2's are its
    own)."""
    from resnet.models import ARCHS

    try:
        present = _param_names_in(model_dir)
    except OSError:
        return None
    if not present:
        return None
    for name, arch in ARCHS.items():
        if arch.v1_spelling and arch.v1_spelling[1] in ("v1.5", "v1-pad1"):
            continue  # the v1 zoo's name stands for the variants sharing its files
        if present == {n for n, _ in arch.build().param_files()}:
            return name
    return None


def detect_depth(model_dir: str) -> int | None:
    """The ResNet depth whose parameter files the directory holds exactly, or None (v1 and
    v1.5 share file names, so only the depth can be told from them)."""
    from resnet.models import ARCHS

    found = detect_arch(model_dir)
    return ARCHS[found].v1_spelling[0] if found and ARCHS[found].v1_spelling else None


def _depth_hint(model_dir: str, spec: Spec) -> str:
    """' (the directory holds a ResNet-N: ...)' when its files are exactly another network's."""
    from resnet.models import ARCHS

    found = detect_arch(model_dir)
    if found is None or found == spec.arch:
        return ""
    arch = ARCHS[found]
    if arch.v1_spelling and spec.family is arch.family:
        if arch.v1_spelling[0] == spec.layer_num:
            return ""
        depth = arch.v1_spelling[0]
        return (f" (the directory holds a ResNet-{depth}: pass --layer_num={depth}, or leave "
                "--layer_num out to use the depth found)")
    return f" (the directory holds a {found}: pass --arch={found})"


def save_model(model_dir: str, spec: Spec, params: dict[str, np.ndarray]) -> None:
    """Write a full v1 model directory; shapes are checked against the spec first."""
    for name, shape in spec.param_files():
        if name not in params:
            raise ModelError(f"{model_dir}: no value for parameter {name}")
        if tuple(np.shape(params[name])) != tuple(shape):
            raise ModelError(f"{model_dir}: parameter {name} has shape "
                             f"{tuple(np.shape(params[name]))}, expected {tuple(shape)}")
    check_values(spec, params, lambda name: f"{model_dir}: parameter {name}")
    os.makedirs(model_dir, exist_ok=True)
    for name, _ in spec.param_files():
        write_param(os.path.join(model_dir, name), params[name])


def random_params(spec: Spec, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random weights that keep activations in a sane range through any depth.

    Used for the demo model and the tests: the values mean nothing, only the format is real.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for node in spec:
        for suffix, shape in node.params():
            value = node.operation.random(suffix, shape, rng)
            out[f"_{node.name}.{suffix}"] = np.asarray(value, dtype=np.float32)
    return out
