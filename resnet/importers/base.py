"""What every importer shares: foreign key names derived from the spec, fitting, writing.

Every parameter file of the spec gets exactly one foreign key, derived from its node name
(`res3_1_branch2b_conv` -> `layer2.0.conv2.weight`), so a checkpoint either fits the chosen
depth and variant completely or is refused with its first mismatches. The directory is
written beside OUT_DIR and renamed into place, so a failure never leaves half a model.
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile

import numpy as np

from resnet.modelio import modelinfo, params as params_io
from resnet.common.arrays import transposed
from resnet.common.files import sha256_file
from resnet.errors import ResnetError
from resnet.importers import IMPORTERS
from resnet.models import ARCHS, build, build_arch, depths
from resnet.models.graph import Spec
from resnet.models.ops import DEFAULT_EPS, eps as bn_eps

log = logging.getLogger("resnet")


# ------------------------------------------------------------------ key names, from the spec

class Style:
    """One ecosystem's key naming of one family's networks: the foreign module of each node,
    the batch-norm leaf names, whether 2-D weights are stored (out, in). A family's naming
    files (resnet_*.py, vgg_*.py) subclass it with `describes` and `module`."""

    def __init__(self, name, bn, fc_out_in, ignore=(), variants=(), recipe=None,
                 variance_eps=None):
        self.name, self.bn, self.fc_out_in, self.ignore = name, bn, fc_out_in, ignore
        self.variants = variants  # the ResNet variants these names can describe (fit's order)
        self.recipe = recipe  # the source's preprocessing, where it is not the importer's
        #: the batch-norm eps the reader already folded into the variances (Keras' reader
        #: folds every file's to 1e-5); each is refolded to its node's eps. None: as stored
        self.variance_eps = variance_eps

    def describes(self, spec: Spec) -> bool:
        """Whether these names can name the spec's parameters."""
        raise NotImplementedError

    def module(self, node: str, index) -> str:
        """The foreign module path of `node` (`index`: mapping's per-family helper)."""
        raise NotImplementedError

    def ignored(self, key: str) -> bool:
        return any(key.endswith(s) for s in self.ignore)

    def adjust(self, values: dict) -> dict:
        """The v1 values after mapping, changed where the source computes something the
        weights can carry (paddle.vision's eval-time dropout factor, folded into its fc)."""
        return values

    def foreign_shape(self, node, suffix: str, shape: tuple) -> tuple:
        """The shape the file holds this parameter in, given its v1 shape (transposed where
        fc_out_in says so). A source may store the same values, in the same order, in another
        shape (timm's VGG fc6 as a 7x7 conv); to_v1 reshapes them back."""
        return shape


_PADDLE_BN = {"w0": "weight", "wbias": "bias", "w1": "_mean", "w2": "_variance"}
_TORCH_BN = {"w0": "weight", "wbias": "bias", "w1": "running_mean", "w2": "running_var"}


class _Styles(dict):
    """Style name -> Style, filled by the family naming files of this package as it loads
    (resnet_torch.py, vgg_keras.py, ...); looking up a name not there yet loads them."""

    def __missing__(self, name):
        IMPORTERS.names()  # imports every module of the package, once
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        raise KeyError(name)


STYLES = _Styles()
#: checkpoint format -> the style names its importer tries, best fit wins (each family's
#: naming files add theirs as the package loads, in file-name order; a family's names never
#: fit another family's network, so the order only matters within a family)
FAMILY_STYLES: dict[str, list[str]] = {}


def add_styles(styles: dict, *formats: str) -> None:
    """Register named styles and have the importers of `formats` try them."""
    STYLES.update(styles)
    for fmt in formats:
        FAMILY_STYLES.setdefault(fmt, []).extend(styles)


def mapping(spec: Spec, style: Style) -> list[tuple[str, str, tuple, bool]]:
    """(v1 file name, foreign key, foreign shape, transposed) for every parameter of the spec."""
    blocks = [n.name[:-len("_addto")] for n in spec if n.op == "addto"]
    index = {b: i for i, b in enumerate(blocks)} if spec.family.name == "resnet" else spec
    rows = []
    for node in spec:
        for suffix, shape in node.params():
            module = style.module(node.name, index)
            leaf = node.operation.foreign_leaf(suffix, style.bn)
            flip = style.fc_out_in and node.operation.foreign_transposed(suffix)
            shape = style.foreign_shape(node, suffix,
                                        tuple(reversed(shape)) if flip else tuple(shape))
            rows.append((f"_{node.name}.{suffix}", f"{module}.{leaf}", shape, flip))
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
    out, shapes = {}, dict(spec.param_files())
    for name, key, _, flip in mapping(spec, style):
        shape = shapes[name][::-1] if flip else shapes[name]  # undoes Style.foreign_shape
        value = np.asarray(state[key], dtype=np.float32).reshape(shape)
        out[name] = transposed(value) if flip else np.ascontiguousarray(value)
    return out


def styles_of(fmt: str) -> list[str]:
    """The style names the importer of `fmt` tries (its package loaded)."""
    IMPORTERS.names()
    return list(FAMILY_STYLES.get(fmt, []))


def fit(state: dict, styles, layer_num: int | None, variants, path: str,
        arch: str | None = None):
    """(spec, style) that `state` fits exactly, or a ResnetError listing the first mismatches.

    With `arch` only that architecture is tried. Otherwise, for ResNet names, the depth is
    read off the checkpoint unless layer_num is given, and `variants` are tried in order,
    each with the styles that can name it (keys and shapes are the same in v1, v1-pad1 and
    v1.5, so among those the variant is the importer's or the user's word); the other
    families' architectures are tried with their styles.
    """
    tried = []

    def candidates(depth_list):
        if arch:
            spec = build_arch(arch)
            for style_name in styles:
                if STYLES[style_name].describes(spec):
                    yield spec, style_name
            return
        for variant in variants:
            for depth in depth_list(variant):
                for style_name in styles:
                    if variant in STYLES[style_name].variants and \
                            STYLES[style_name].describes(build(depth, variant)):
                        yield build(depth, variant), style_name
        if layer_num is None:
            for name, entry in ARCHS.items():
                if entry.v1_spelling:
                    continue
                for style_name in styles:
                    if STYLES[style_name].describes(entry.build()):
                        yield entry.build(), style_name

    for spec, style_name in candidates(lambda v: [layer_num] if layer_num else depths(v)):
        problems = mismatches(state, spec, STYLES[style_name])
        if not problems:
            return spec, STYLES[style_name]
        found = sum(1 for _, key, shape, _ in mapping(spec, STYLES[style_name])
                    if key in state and tuple(np.shape(state[key])) == shape)
        # the closest: most of its keys held with their shapes, then fewest problems; a file
        # holding none of any network's keys is measured against the first one tried
        tried.append(((-found, len(problems) if found else 0), spec, style_name, problems))
    if not tried:
        what = arch or " or ".join(variants)
        raise ResnetError(f"{path}: these checkpoints hold no {what} network")
    _, best, style_name, problems = min(tried, key=lambda t: t[0])
    hint = ""
    if layer_num is not None and not arch:
        for spec, s in candidates(depths):
            if spec.layer_num != layer_num and not mismatches(state, spec, STYLES[s]):
                hint = f" (it fits ResNet-{spec.layer_num}: pass --layer_num={spec.layer_num})"
                break
    shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5
                                       else "")
    raise ResnetError(f"{path}: does not fit {best.family.short(best)} ({style_name} names): "
                      f"{len(problems)} mismatches: {shown}{hint}")


# ------------------------------------------------------------------ folding into v1's BN

def fold_conv_biases(state: dict, path: str, mean_after) -> dict:
    """Each conv bias folded into the running mean of the batch norm after it (BN(conv + b)
    is BN(conv) with its mean moved by b, exactly). `mean_after(key)` names that running mean
    for a conv bias's key, None for every other key."""
    out = dict(state)
    for key in state:
        mean = mean_after(key)
        if mean is None:
            continue
        if mean not in out or np.shape(out[mean]) != np.shape(state[key]):
            raise ResnetError(f"{path}: {key} has no batch norm after it to fold it into")
        out[mean] = (np.asarray(out[mean], np.float32)
                     - np.asarray(out.pop(key), np.float32)).astype(np.float32)
    return out


def variance_for_v1_eps(var, eps: float) -> np.ndarray:
    """The variance that makes a batch norm with v1's eps (1e-5) compute what one with `eps`
    computes: var + eps - 1e-5, exactly."""
    return (np.asarray(var, np.float32) + np.float32(eps - DEFAULT_EPS)).astype(np.float32)


def refold_eps(values: dict, spec: Spec, folded: float | None) -> dict:
    """Variances a reader folded for eps `folded` made exact for each BN node's own eps:
    var + folded - eps (Keras' InceptionV3 read at 1e-5 and run at its 1e-3)."""
    if folded is None:
        return values
    for node in spec:
        if node.op == "bn" and bn_eps(node) != folded:
            key = f"_{node.name}.w2"
            values[key] = (values[key] + np.float32(folded - bn_eps(node))).astype(np.float32)
    return values


# ------------------------------------------------------------------ reading checkpoints

@functools.cache
def largest_param() -> int:
    """Values in the largest parameter of any network this project builds: a checkpoint
    tensor larger than that fits none of them, so readers refuse one before reading it."""
    return max(int(np.prod(shape)) for _, arch in ARCHS.items()
               for _, shape in arch.build().param_files())


@functools.cache
def largest_model() -> int:
    """Parameter values of the largest network this project builds."""
    return max(arch.build().param_count() for _, arch in ARCHS.items())


def max_tensor_bytes() -> int:
    """The most bytes one checkpoint tensor may declare: the largest parameter in float64."""
    return 8 * largest_param()


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
    for key, value in state.items():
        if value.dtype.kind not in "fiub":  # strings or objects would fail in float32
            raise ResnetError(f"{path}: tensor {key} holds {value.dtype} values, not numbers")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


# ------------------------------------------------------------------ writing the directory

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
        if os.path.lexists(out_dir):  # a link there is moved aside itself, never followed
            old = tempfile.mkdtemp(prefix=f".{base}.replaced-", dir=parent)
            os.rename(out_dir, os.path.join(old, base))
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_checkpoint(fmt: str, path: str) -> dict[str, np.ndarray]:
    """name -> numpy array from the checkpoint file, read by importer `fmt`; no foreign code
    is run. A file whose first bytes say it is another registered format is refused."""
    if not os.path.isfile(path):
        raise ResnetError(f"{path}: " + ("is a directory, expected a checkpoint file"
                                         if os.path.isdir(path) else "file not found"))
    with open(path, "rb") as f:
        head = f.read(256)
    looks = next((name for name, imp in IMPORTERS.items() if imp.looks_like(head)), None)
    if looks and looks != fmt and not IMPORTERS[fmt].looks_like(head):  # a legacy .pth
        # is a pickle too: only a file the asked format does not recognise is refused
        raise ResnetError(f"{path}: looks like a {looks} checkpoint, not {fmt}: pass "
                          f"--from={looks}")
    return _state_dict(IMPORTERS[fmt].read(path), path)


def convert(fmt: str, path: str, out_dir: str, layer_num: int | None = None,
            variant: str | None = None, overwrite: bool = False,
            arch: str | None = None) -> modelinfo.ModelInfo:
    """Convert one checkpoint; returns what was written to OUT_DIR/model.json. The
    architecture is detected from the names and shapes unless `arch` (or a ResNet's
    layer_num / variant) says it."""
    importer = IMPORTERS[fmt]  # an unknown format: one line naming the registered ones
    variants = (variant,) if variant else getattr(importer, "variants", ("v1.5",))
    if arch:  # an unknown name, or one mixed with the v1 spellings, fails before reading
        from resnet.models import select

        select(arch, layer_num, variant)
    for v in variants:  # an unsupported depth or variant fails before reading
        build(layer_num or 50, v)
    check_out_dir(out_dir, overwrite)
    state = read_checkpoint(fmt, path)
    spec, style = fit(state, styles_of(fmt), layer_num, variants, path, arch)
    values = style.adjust(refold_eps(to_v1(state, spec, style), spec, style.variance_eps))
    keys = {name: key for name, key, _, _ in mapping(spec, style)}
    params_io.check_values(spec, values, lambda name: f"{path}: {keys[name]}")
    spelling = ARCHS[spec.arch].v1_spelling or (None, None)
    info = modelinfo.ModelInfo(
        *spelling, style.recipe or getattr(importer, "recipe", modelinfo.IMAGENET_RGB),
        "imagenet",
        {"format": fmt, "names": style.name, "file": os.path.basename(path),
         "sha256": sha256_file(path), **getattr(style, "source", {})},
        spec.arch)
    write_model(out_dir, spec, values, info, overwrite)
    return info
