"""Keras applications' ResNet50/101/152: Keras 2 and Keras 3 `.h5`, `.weights.h5` and `.keras`
files, read with h5py alone (no Keras, no TensorFlow).

Keras' ResNets have v1 strides (on the first 1x1) but a max pool padded by one and rounded
down (the `v1-pad1` variant), a bias on every conv and BatchNorm eps 1.001e-5 (1e-3 in the
older, Caffe-named ResNet50 file). Each conv bias is folded into the batch norm after it and
each eps into its variance, both exactly, so the weights become a v1-pad1 network that
computes what Keras computes. Kernels (kh, kw, in, out) are turned to (out, in, kh, kw); the
Dense kernel (2048, 1000) already has v1's layout.

Where a file carries the model config (.keras, a whole-model .h5) each BatchNorm's eps is read
from it; bare weight files get the eps of their naming. ResNet50V2/101V2/152V2 are refused:
their pre-activation network is not MXNet's (stride on a stage's last block, a max-pool
shortcut, no input BN), so no registered variant computes it.
"""
from __future__ import annotations

import io
import json
import logging
import re
import zipfile

import numpy as np

from resnet.errors import ResnetError
from resnet.importers import IMPORTERS
from resnet.importers.base import (STYLES, Style, fold_conv_biases,
                                   variance_for_v1_eps)
from resnet.importers.caffe import caffe_block
from resnet.modelio.modelinfo import Recipe

log = logging.getLogger("resnet")

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
KERAS_ZIP_NAMES = (b"metadata.json", b"config.json", b"model.weights.h5")
EPS = 1.001e-5  # keras.applications.resnet's BatchNormalization
LEGACY_EPS = 1e-3  # the Caffe-named ResNet50 file (Keras' default eps)
_BN_LEAVES = ("gamma", "beta", "moving_mean", "moving_variance")


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _attr_list(node, name: str) -> list[str]:
    """A Keras list attribute, which Keras splits into name0, name1, ... when it is long."""
    if name in node.attrs:
        return [_text(v) for v in node.attrs[name]]
    out, k = [], 0
    while f"{name}{k}" in node.attrs:
        out += [_text(v) for v in node.attrs[f"{name}{k}"]]
        k += 1
    return out


def _snake(name: str) -> str:
    """Keras' own snake_case of a class name (Conv2D -> conv2d, BatchNormalization ->
    batch_normalization): the folder names of a Keras 3 weights file."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _config_layers(config: dict | None) -> list[dict]:
    return (config or {}).get("config", {}).get("layers", [])


def _keras3_weights(f, config: dict | None, path: str) -> dict[str, list[np.ndarray]]:
    """layer name -> its variables, from a Keras 3 weights file (layers/<folder>/vars/0..n).

    Keras >= 3.6 names each vars group; older files name folders by class and rank, which
    the model config (a .keras file's config.json) turns back into layer names."""
    by_folder = {}
    counts: dict[str, int] = {}
    for layer in _config_layers(config):
        base = _snake(layer["class_name"])
        k = counts.get(base, 0)
        counts[base] = k + 1
        by_folder[base if k == 0 else f"{base}_{k}"] = layer["config"]["name"]
    out = {}
    for folder, group in f["layers"].items():
        if "vars" not in group or not len(group["vars"]):
            continue
        name = group["vars"].attrs.get("name") or by_folder.get(folder)
        if name is None:
            raise ResnetError(f"{path}: a Keras weights file without layer names (written by "
                              "Keras < 3.6): convert the .keras file, which holds them")
        values = group["vars"]
        out[_text(name)] = [np.asarray(values[str(i)]) for i in range(len(values))]
    return out


def _legacy_weights(f) -> dict[str, list[np.ndarray]]:
    """layer name -> its weights, from a Keras 2 file or a Keras 3 whole-model .h5
    (layer_names, then each layer's weight_names in the layer's own order)."""
    root = f["model_weights"] if "model_weights" in f else f
    out = {}
    for name in _attr_list(root, "layer_names"):
        names = _attr_list(root[name], "weight_names")
        if names:
            out[name] = [np.asarray(root[name][w]) for w in names]
    return out


def _open(path: str):
    """(h5py file, model config or None) of any Keras file."""
    import h5py

    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(ZIP_MAGIC):
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "model.weights.h5" not in names:
                raise ResnetError(f"{path}: a zip file without model.weights.h5: not a .keras "
                                  "model")
            config = json.loads(z.read("config.json")) if "config.json" in names else None
            data = z.read("model.weights.h5")
        return h5py.File(io.BytesIO(data), "r"), config
    if not head.startswith(HDF5_MAGIC):
        raise ResnetError(f"{path}: not a Keras file (neither HDF5 nor a .keras zip)")
    f = h5py.File(path, "r")
    config = f.attrs.get("model_config")
    return f, (json.loads(_text(config)) if config is not None else None)


def read_layers(path: str) -> tuple[dict[str, list[np.ndarray]], dict | None]:
    """(layer name -> weights in Keras' order, model config or None)."""
    try:
        f, config = _open(path)
        with f:
            if "layers" in f and "vars" in f:
                layers = _keras3_weights(f, config, path)
            else:
                layers = _legacy_weights(f)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ResnetError(f"{path}: not a readable Keras file ({e})") from None
    if not layers:
        raise ResnetError(f"{path}: a Keras file without weights")
    return layers, config


def state(path: str) -> dict[str, np.ndarray]:
    """`<layer>.weight` (out, in, kh, kw) for convs, `<layer>.{gamma,beta,moving_mean,
    moving_variance}` with conv biases and eps folded in, `<dense>.{weight,bias}`."""
    layers, config = read_layers(path)
    if any(n.endswith("_preact_bn") or n == "post_bn" for n in layers):
        raise ResnetError(f"{path}: a Keras ResNet V2 (ResNet50V2/101V2/152V2), whose "
                          "pre-activation network (stride on a stage's last block, max-pool "
                          "shortcuts) is none of the supported variants")
    legacy = "bn_conv1" in layers
    eps = {layer["config"]["name"]: float(layer["config"].get("epsilon", LEGACY_EPS))
           for layer in _config_layers(config) if layer["class_name"] == "BatchNormalization"}
    if not eps:
        log.info("%s: no model config; BatchNorm eps %g assumed (%s naming)", path,
                 LEGACY_EPS if legacy else EPS, "the older Caffe" if legacy else "Keras'")
    out: dict[str, np.ndarray] = {}
    convs = set()
    for name, values in layers.items():
        values = [np.asarray(v, np.float32) for v in values]
        if values[0].ndim == 4:  # Conv2D: kernel (kh, kw, in, out)[, bias]
            out[f"{name}.weight"] = np.ascontiguousarray(values[0].transpose(3, 2, 0, 1))
            convs.add(name)
            if len(values) > 1:
                out[f"{name}.bias"] = values[1]
        elif values[0].ndim == 2:  # Dense: kernel (in, out), bias
            out[f"{name}.weight"] = values[0]
            if len(values) > 1:
                out[f"{name}.bias"] = values[1]
        elif len(values) == 4:  # BatchNormalization: gamma, beta, moving mean and variance
            default = LEGACY_EPS if legacy else EPS
            values[3] = variance_for_v1_eps(values[3], eps.get(name, default))
            out.update((f"{name}.{leaf}", v) for leaf, v in zip(_BN_LEAVES, values))
        else:
            raise ResnetError(f"{path}: layer {name} holds {len(values)} vectors; a ResNet "
                              "has only convolutions, batch norms and one dense layer")
    return fold_conv_biases(out, path, lambda key: (
        f"{_bn_after(key[:-len('.bias')])}.moving_mean"
        if key.endswith(".bias") and key[:-len(".bias")] in convs else None))


def _bn_after(conv: str) -> str:
    """The batch norm that follows a conv: conv2_block1_1_conv -> conv2_block1_1_bn; in the
    Caffe naming conv1 -> bn_conv1, res2a_branch2a -> bn2a_branch2a."""
    if conv.endswith("_conv"):
        return conv[:-len("conv")] + "bn"
    if conv == "conv1":
        return "bn_conv1"
    return "bn" + conv[len("res"):] if conv.startswith("res") else conv


_BRANCH = {"1": 0, "2a": 1, "2b": 2, "2c": 3}  # conv{s}_block{j}_0 is the projection


def _keras_block(stage, j, _, branch, kind):
    return f"conv{stage}_block{j}_{_BRANCH[branch]}_{kind}"


_BN_NAMES = dict(zip(("w0", "wbias", "w1", "w2"), _BN_LEAVES))
STYLES.update({
    "keras": Style("keras", {"conv": "conv1_conv", "bn": "conv1_bn"}, _keras_block,
                   _BN_NAMES, False, fc="predictions"),
    # keras-applications' first ResNet50 file, named after the Caffe model
    "keras (Caffe names)": Style("keras (Caffe names)", {"conv": "conv1", "bn": "bn_conv1"},
                                 caffe_block(False), _BN_NAMES, False, fc="fc1000"),
})


@IMPORTERS.register("keras")
class KerasImporter:
    styles = ("keras", "keras (Caffe names)")
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
