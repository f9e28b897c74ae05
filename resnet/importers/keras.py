"""Keras applications' ResNet50/101/152, VGG16/19, InceptionV3 and Xception: Keras 2 and
Keras 3 `.h5`, `.weights.h5` and `.keras` files, read with h5py alone (no Keras, no
TensorFlow). The family naming files (resnet_keras.py, vgg_keras.py, inception_keras.py,
xception_keras.py) say which layer is which.

Keras' ResNets have v1 strides (on the first 1x1) but a max pool padded by one and rounded
down (the `v1-pad1` variant), a bias on every conv and BatchNorm eps 1.001e-5 (1e-3 in the
older, Caffe-named ResNet50 file). Each conv bias is folded into the batch norm after it and
each eps into its variance, both exactly, so the weights become a v1-pad1 network that
computes what Keras computes. Kernels (kh, kw, in, out) are turned to (out, in, kh, kw); the
Dense kernel (2048, 1000) already has v1's layout.

Keras' VGGs have no batch norm: their conv biases are kept as they are. Their `fc1` takes
block5's pooled map flattened the Keras way, (H, W, C) from an NHWC tensor, where the spec's
fc6 flattens (C, H, W); its rows are put in the spec's order here, so the file's `fc1.weight`
is already v1's (importers/vgg_keras.py names the layers).

InceptionV3's batch norms have no gamma (`scale=False`): they get ones. Its convs and
batch norms, and Xception's four residual ones, are unnamed in Keras' code and carry
automatic names (`conv2d_7`) counted across a process; they are renumbered from 1 in
creation order, so the family files can find them by position. A SeparableConv2D becomes
`<layer>.depthwise.weight` (in x multiplier, 1, kh, kw) and `<layer>.pointwise.weight`.

Every HDF5 file (a .keras zip's member too, read only after its declared size and
compression ratio pass) is opened through common/hdf5.open_checked: data kept outside the
file (external storage, virtual datasets, external or soft links), datasets larger than the
largest parameter of any network and damaged global heaps are refused before anything is
read; config JSON is parsed with bounded depth and each BatchNorm eps must be a finite
number >= 0.

Where a file carries the model config (.keras, a whole-model .h5) each BatchNorm's eps is read
from it; bare weight files get 1.001e-5 when they hold keras.applications.resnet's names,
else Keras' default 1e-3. ResNet50V2/101V2/152V2 are refused:
their pre-activation network is not MXNet's (stride on a stage's last block, a max-pool
shortcut, no input BN), so no registered variant computes it.
"""
from __future__ import annotations

import io
import logging
import math
import re
import zipfile

import numpy as np

from resnet.common import hdf5, jsonread
from resnet.errors import ResnetError, first_line
from resnet.importers import IMPORTERS
from resnet.importers._archive import open_zip, read_member
from resnet.importers.base import (fold_conv_biases, largest_model, max_tensor_bytes,
                                   variance_for_v1_eps)
from resnet.modelio.modelinfo import Recipe

log = logging.getLogger("resnet")

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
KERAS_ZIP_NAMES = (b"metadata.json", b"config.json", b"model.weights.h5")
EPS = 1.001e-5  # keras.applications.resnet's BatchNormalization
LEGACY_EPS = 1e-3  # the Caffe-named ResNet50 file (Keras' default eps)
BN_LEAVES = ("gamma", "beta", "moving_mean", "moving_variance")
#: the spec's batch-norm files -> the leaves above, as the family styles name them
BN_NAMES = dict(zip(("w0", "wbias", "w1", "w2"), BN_LEAVES))
#: the classes whose unnamed layers the networks read here rely on (InceptionV3's convs and
#: batch norms, Xception's residual ones): their automatic names are renumbered from 1
AUTO_NAMED = ("conv2d", "batch_normalization")
#: a .keras file's weights member and its config.json are read only up to these sizes
MAX_WEIGHTS_MEMBER = 1 << 30
MAX_CONFIG = 1 << 26


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _attr(node, name: str, path: str):
    """A text attribute's value (None when absent). Only string-typed attributes are read:
    libhdf5 crashes on some damaged variable-length types, and Keras writes strings only."""
    if name not in node.attrs:
        return None
    import h5py

    info = node.attrs.get_id(name)
    if info.get_space().get_simple_extent_npoints() == 0:  # Keras' empty weight_names
        return np.zeros(0, "S1")
    if info.get_type().get_class() != h5py.h5t.STRING:
        raise ResnetError(f"{path}: attribute '{name}' of '{node.name}' is not text")
    return node.attrs[name]


def _attr_list(node, name: str, path: str) -> list[str]:
    """A Keras list attribute, which Keras splits into name0, name1, ... when it is long."""
    if name in node.attrs:
        return [_text(v) for v in np.atleast_1d(_attr(node, name, path))]
    out, k = [], 0
    while f"{name}{k}" in node.attrs:
        out += [_text(v) for v in np.atleast_1d(_attr(node, f"{name}{k}", path))]
        k += 1
    return out


def _snake(name: str) -> str:
    """Keras' own snake_case of a class name (Conv2D -> conv2d, BatchNormalization ->
    batch_normalization): the folder names of a Keras 3 weights file."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _config_layers(config, where: str) -> list[dict]:
    """The model config's layers, each checked to have a class name and a named config
    (`where` names the config in messages: the file and config.json or model_config)."""
    if config is None:
        return []
    inner = config.get("config", {}) if isinstance(config, dict) else None
    layers = inner.get("layers", []) if isinstance(inner, dict) else None
    if not isinstance(layers, list):
        raise ResnetError(f"{where}: not a Keras model config (expected an object with "
                          "config.layers a list)")
    for i, layer in enumerate(layers):
        if not (isinstance(layer, dict) and isinstance(layer.get("class_name"), str)
                and isinstance(layer.get("config"), dict)
                and isinstance(layer["config"].get("name"), str)):
            raise ResnetError(f"{where}: layer {i} of the model config has no class_name or "
                              "no config with a name")
    return layers


def _epsilons(layers: list[dict], where: str) -> dict[str, float]:
    """BatchNormalization layer name -> its eps, which must be a finite number >= 0."""
    out = {}
    for layer in layers:
        if layer["class_name"] != "BatchNormalization":
            continue
        name, eps = layer["config"]["name"], layer["config"].get("epsilon", LEGACY_EPS)
        if not (isinstance(eps, (int, float)) and not isinstance(eps, bool)
                and math.isfinite(eps) and eps >= 0):
            raise ResnetError(f"{where}: layer {name}: epsilon {eps!r:.40} is not a finite "
                              "number >= 0")
        out[name] = float(eps)
    return out


class _Budget:
    """Reads datasets as arrays, refusing a non-numeric one and stopping once the bytes read
    pass what the largest network could hold in float64 (twice over: conv biases, optimizer
    slots)."""

    def __init__(self, path: str):
        self.path, self.left = path, 2 * 8 * largest_model()

    def read(self, ds, name: str) -> np.ndarray:
        import h5py

        if not isinstance(ds, h5py.Dataset):
            raise ResnetError(f"{self.path}: '{name}' is not a dataset")
        if ds.dtype.kind not in "fiu":
            raise ResnetError(f"{self.path}: dataset '{name}' holds {ds.dtype}, not numbers")
        self.left -= ds.size * ds.dtype.itemsize
        if self.left < 0:
            raise ResnetError(f"{self.path}: more weights than any supported network "
                              "holds; refused")
        return np.asarray(ds[()])


def _keras3_weights(f, config: dict | None, path: str) -> dict[str, list[np.ndarray]]:
    """layer name -> its variables, from a Keras 3 weights file (layers/<folder>/vars/0..n).

    Keras >= 3.6 names each vars group; older files name folders by class and rank, which
    the model config (a .keras file's config.json) turns back into layer names."""
    by_folder = {}
    counts: dict[str, int] = {}
    budget = _Budget(path)
    for layer in _config_layers(config, path):
        base = _snake(layer["class_name"])
        k = counts.get(base, 0)
        counts[base] = k + 1
        by_folder[base if k == 0 else f"{base}_{k}"] = layer["config"]["name"]
    out = {}
    for folder, group in f["layers"].items():
        if not hasattr(group, "keys") or "vars" not in group or not len(group["vars"]):
            continue
        name = _attr(group["vars"], "name", path)
        name = (_text(np.asarray(name).reshape(-1)[0])
                if name is not None and np.size(name) == 1 else by_folder.get(folder))
        if not name:
            raise ResnetError(f"{path}: a Keras weights file without layer names (written by "
                              "Keras < 3.6): convert the .keras file, which holds them")
        values = group["vars"]
        out[_text(name)] = [budget.read(values[str(i)], f"layers/{folder}/vars/{i}")
                            for i in range(len(values))]
    return out


def _legacy_weights(f, path: str, leaves: dict) -> dict[str, list[np.ndarray]]:
    """layer name -> its weights, from a Keras 2 file or a Keras 3 whole-model .h5
    (layer_names, then each layer's weight_names in the layer's own order); `leaves` gets
    each layer's weight names without the layer and ':0' (`gamma`, `beta`, ...)."""
    root = f["model_weights"] if "model_weights" in f else f
    budget = _Budget(path)
    out = {}
    for name in _attr_list(root, "layer_names", path):
        names = _attr_list(root[name], "weight_names", path)
        if names:
            out[name] = [budget.read(root[name][w], f"{name}/{w}") for w in names]
            leaves[name] = [w.rsplit("/", 1)[-1].split(":", 1)[0] for w in names]
    return out


def _open(path: str):
    """(h5py file, model config or None, where the config came from) of any Keras file.

    Every HDF5 file goes through hdf5.open_checked, which refuses data kept outside it
    (external storage, virtual datasets, external links) and datasets larger than the
    largest parameter of any network, before a byte of them is read."""
    with open(path, "rb") as f:
        head = f.read(8)
    limit = max_tensor_bytes()
    if head.startswith(ZIP_MAGIC):
        with open_zip(path) as z:
            names = set(z.namelist())
            if "model.weights.h5" not in names:
                raise ResnetError(f"{path}: a zip file without model.weights.h5: not a .keras "
                                  "model")
            where = f"{path}: config.json"
            config = (jsonread.loads(read_member(z, "config.json", path, MAX_CONFIG), where)
                      if "config.json" in names else None)
            data = read_member(z, "model.weights.h5", path, MAX_WEIGHTS_MEMBER)
        return hdf5.open_checked(io.BytesIO(data), max_bytes=limit, heaps=True,
                                 name=f"{path}: model.weights.h5"), config, where
    if not head.startswith(HDF5_MAGIC):
        raise ResnetError(f"{path}: not a Keras file (neither HDF5 nor a .keras zip)")
    f = hdf5.open_checked(path, max_bytes=limit, heaps=True)
    where = f"{path}: model_config"
    try:
        config = _attr(f, "model_config", path)
        config = jsonread.loads(_text(config), where) if config is not None else None
    except BaseException:
        f.close()
        raise
    return f, config, where


def read_layers(path: str) -> tuple[dict[str, list[np.ndarray]], dict[str, list[str]],
                                     list[dict], str]:
    """(layer name -> weights in Keras' order, layer name -> their weight names where the
    file keeps them, the model config's layers, where they are)."""
    leaves: dict[str, list[str]] = {}
    try:
        f, config, where = _open(path)
        with f:
            layers_config = _config_layers(config, where)
            if "layers" in f and "vars" in f:
                layers = _keras3_weights(f, config, path)
            else:
                layers = _legacy_weights(f, path, leaves)
    except (OSError, KeyError, ValueError, TypeError, AttributeError, RuntimeError,
            zipfile.BadZipFile, EOFError) as e:  # h5py's errors on a damaged file
        raise ResnetError(f"{path}: not a readable Keras file "
                          f"({first_line(str(e)) or type(e).__name__})") from None
    if not layers:
        raise ResnetError(f"{path}: a Keras file without weights")
    return layers, leaves, layers_config, where


def _bn_leaves(name: str, count: int, leaves: list[str] | None, config: dict | None,
               path: str) -> list[str]:
    """The names of a BatchNormalization's `count` vectors: the file's own weight names,
    else the layer config's `scale` / `center` (Keras drops gamma or beta when they are off),
    else all four, or without gamma when there are three (InceptionV3's `scale=False`, the
    one Keras application that drops one)."""
    if leaves and len(leaves) == count and set(leaves) <= set(BN_LEAVES):
        return leaves
    if config is not None:
        found = ((["gamma"] if config.get("scale", True) else [])
                 + (["beta"] if config.get("center", True) else [])
                 + ["moving_mean", "moving_variance"])
    else:
        found = list(BN_LEAVES[1:] if count == 3 else BN_LEAVES)
    if len(found) != count:
        raise ResnetError(f"{path}: batch norm {name} holds {count} vectors; expected "
                          f"{len(found)} ({', '.join(found)})")
    return found


def _renumbered(names) -> dict[str, str]:
    """Keras' automatic layer names (`conv2d`, `conv2d_1`, ... in creation order, the count
    going on across the models of a process; the published files start at `conv2d_1`) ->
    `conv2d_1`, `conv2d_2`, ... in the same order, so a network's unnamed layers are found
    by position whichever count the file started from."""
    out = {}
    for prefix in AUTO_NAMED:
        found = sorted((int(m.group(1) or 0), n) for n in names
                       if (m := re.fullmatch(rf"{prefix}(?:_(\d+))?", n)))
        out.update((n, f"{prefix}_{k}") for k, (_, n) in enumerate(found, 1))
    return out


def state(path: str) -> dict[str, np.ndarray]:
    """`<layer>.weight` (out, in, kh, kw) for convs, `<layer>.{depthwise,pointwise}.weight`
    for separable convs, `<layer>.{gamma,beta,moving_mean,moving_variance}` with conv
    biases and eps folded in (a BN without gamma or beta gets ones or zeros),
    `<dense>.{weight,bias}`; a network without batch norms (VGG) keeps its `<conv>.bias`.
    Automatic layer names are renumbered from 1 (`_renumbered`)."""
    layers, leaves, layers_config, where = read_layers(path)
    if any(n.endswith("_preact_bn") or n == "post_bn" for n in layers):
        raise ResnetError(f"{path}: a Keras ResNet V2 (ResNet50V2/101V2/152V2), whose "
                          "pre-activation network (stride on a stage's last block, max-pool "
                          "shortcuts) is none of the supported variants")
    configs = {layer["config"]["name"]: layer["config"] for layer in layers_config}
    eps = _epsilons(layers_config, where)
    # keras.applications.resnet sets 1.001e-5; every other network read here (the Caffe-named
    # ResNet50 too) keeps Keras' default 1e-3
    default = EPS if "conv1_bn" in layers else LEGACY_EPS
    is_bn = {name: values[0].ndim == 1 and len(values) in (3, 4)
             for name, values in layers.items()}
    if any(is_bn.values()) and not eps:
        log.info("%s: no model config; BatchNorm eps %g assumed", path, default)
    out: dict[str, np.ndarray] = {}
    convs = set()
    rename = _renumbered(layers)
    for name, values in layers.items():
        values = [np.asarray(v, np.float32) for v in values]
        key = rename.get(name, name)
        if values[0].ndim == 4 and len(values) > 1 and values[1].ndim == 4:
            # SeparableConv2D: depthwise (kh, kw, in, multiplier), pointwise (1, 1, in, out)
            kh, kw, c, m = values[0].shape
            out[f"{key}.depthwise.weight"] = np.ascontiguousarray(
                values[0].transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw))
            out[f"{key}.pointwise.weight"] = np.ascontiguousarray(
                values[1].transpose(3, 2, 0, 1))
            if len(values) > 2:
                raise ResnetError(f"{path}: separable conv {name} has a bias; the Keras "
                                  "networks read here have none")
        elif values[0].ndim == 4:  # Conv2D: kernel (kh, kw, in, out)[, bias]
            out[f"{key}.weight"] = np.ascontiguousarray(values[0].transpose(3, 2, 0, 1))
            convs.add(key)
            if len(values) > 1:
                out[f"{key}.bias"] = values[1]
        elif values[0].ndim == 2:  # Dense: kernel (in, out), bias
            out[f"{key}.weight"] = values[0]
            if len(values) > 1:
                out[f"{key}.bias"] = values[1]
        elif is_bn[name]:  # BatchNormalization: [gamma,] [beta,] moving mean and variance
            bn = dict(zip(_bn_leaves(name, len(values), leaves.get(name), configs.get(name),
                                     path), values))
            size = bn["moving_mean"].shape
            bn.setdefault("gamma", np.ones(size, np.float32))
            bn.setdefault("beta", np.zeros(size, np.float32))
            bn["moving_variance"] = variance_for_v1_eps(bn["moving_variance"],
                                                        eps.get(name, default))
            out.update((f"{key}.{leaf}", bn[leaf]) for leaf in BN_LEAVES)
        else:
            raise ResnetError(f"{path}: layer {name} holds {len(values)} vectors; the Keras "
                              "networks read here have only convolutions, batch norms and "
                              "dense layers")
    if not any(is_bn.values()):  # VGG: every conv keeps its bias, nothing to fold it into
        return _vgg_fc1_rows(out)
    return fold_conv_biases(out, path, lambda key: (
        f"{_bn_after(key[:-len('.bias')])}.moving_mean"
        if key.endswith(".bias") and key[:-len(".bias")] in convs else None))


def _vgg_fc1_rows(out: dict) -> dict:
    """Keras' VGG `fc1` reads block5's pooled (H, W, C) map flattened in that order; its rows
    reordered to the spec's (C, H, W) flatten. C is block5's width; H = W. A file where
    these do not divide evenly is left as it is (the fit then names the shapes)."""
    kernel = out.get("fc1.weight")
    widths = [np.shape(out[k])[0] for k in out
              if re.fullmatch(r"block5_conv\d+\.weight", k) and np.ndim(out[k]) == 4]
    if kernel is None or kernel.ndim != 2 or not widths:
        return out
    rows, c = kernel.shape[0], widths[0]
    side = math.isqrt(rows // c) if c and rows % c == 0 else 0
    if side and side * side * c == rows:
        out["fc1.weight"] = np.ascontiguousarray(
            kernel.reshape(side, side, c, -1).transpose(2, 0, 1, 3).reshape(rows, -1))
    return out


def _bn_after(conv: str) -> str:
    """The batch norm that follows a conv: conv2_block1_1_conv -> conv2_block1_1_bn; in the
    Caffe naming conv1 -> bn_conv1, res2a_branch2a -> bn2a_branch2a."""
    if conv.endswith("_conv"):
        return conv[:-len("conv")] + "bn"
    if conv == "conv1":
        return "bn_conv1"
    return "bn" + conv[len("res"):] if conv.startswith("res") else conv


@IMPORTERS.register("keras")
class KerasImporter:
    suffixes = (".h5", ".weights.h5", ".keras")
    variants = ("v1-pad1",)
    # imagenet_utils.preprocess_input's 'caffe' mode on load_img(target_size=(224, 224)):
    # BGR 0-255 minus the ImageNet means, the image resized straight to 224x224
    recipe = Recipe("BGR", 1.0, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0), None)

    @staticmethod
    def looks_like(head: bytes) -> bool:
        # HDF5, or a zip whose first member (name at byte 30) is one of a .keras file's
        return head.startswith(HDF5_MAGIC) or (
            head.startswith(ZIP_MAGIC) and head[30:].startswith(KERAS_ZIP_NAMES))

    @staticmethod
    def read(path: str) -> dict:
        return state(path)
