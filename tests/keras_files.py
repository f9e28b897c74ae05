"""Keras ResNets with seeded random weights, built by Keras 3 itself (jax backend) and saved in
its file formats; plus the two layouts Keras 3 cannot write any more, written with h5py as
Keras 2 writes them: `save_weights('x.h5')` (layer_names / weight_names attributes, names with
':0') and the older keras-applications ResNet50 file (Caffe layer names, BN eps 1e-3)."""
import os
import re

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")


def keras():
    """Keras, with its random initializers drawing from numpy (_numpy_initializers)."""
    import keras as k

    _numpy_initializers()
    return k


class _NumpyRandom:
    """keras.random's normal / truncated_normal / uniform for the initializers, from numpy.

    Under jax each initializer call compiles an XLA program per weight shape, most of the
    time of building a Keras application (docs/testing.md). Every test sets the weights it
    compares anyway; these keep the untouched ones random, seeded."""

    def __init__(self, module):
        mine = {"normal", "truncated_normal", "uniform"}  # the rest: keras.random's own
        self.__dict__.update({k: v for k, v in vars(module).items()
                              if not k.startswith("__") and k not in mine})
        self._rng = np.random.default_rng(0)

    def normal(self, shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
        return (self._rng.standard_normal(shape) * stddev + mean).astype(dtype or "float32")

    def truncated_normal(self, shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
        x = self._rng.standard_normal(shape)
        while (far := np.abs(x) > 2).any():  # redrawn beyond two deviations, as keras does
            x[far] = self._rng.standard_normal(int(far.sum()))
        return (x * stddev + mean).astype(dtype or "float32")

    def uniform(self, shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        return self._rng.uniform(minval, maxval, shape).astype(dtype or "float32")


def _numpy_initializers():
    from keras.src.initializers import random_initializers as module

    if not isinstance(module.random, _NumpyRandom):
        module.random = _NumpyRandom(module.random)
    assert module.random.normal.__func__ is _NumpyRandom.normal  # not shadowed by keras'


def randomize(model, seed):
    """Every conv bias, BN statistic and the classifier away from their initial values, so
    that folding biases and eps is visible in the outputs."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = layer.get_weights()
        if not values:
            continue
        kind = type(layer).__name__
        if kind == "BatchNormalization":
            n = values[0].shape
            values = [rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.1, n),
                      rng.uniform(0.5, 1.5, n)]
        else:  # Conv2D / Dense: He-scaled kernel, small bias
            fan_in = int(np.prod(values[0].shape[:-1]))
            values = [rng.normal(0, np.sqrt(2.0 / fan_in), values[0].shape)] + \
                     [rng.normal(0, 0.1, v.shape) for v in values[1:]]
        layer.set_weights([v.astype(np.float32) for v in values])
    return model


def application(depth, seed):
    """keras.applications.ResNet{depth}(weights=None) with seeded random weights."""
    k = keras()
    return randomize(getattr(k.applications, f"ResNet{depth}")(weights=None), seed)


def caffe_named_resnet50(seed):
    """keras-applications' first ResNet50 (resnet50.py of Keras 2.0-2.2): Caffe layer names,
    Keras' default BN eps 1e-3, the same pad-1 max pool as today's file."""
    k = keras()
    L = k.layers

    def unit(x, filters, stage, block, stride, project):
        name = f"{stage}{block}_branch"
        shortcut = x
        if project:
            shortcut = L.Conv2D(filters * 4, 1, strides=stride, name=f"res{name}1")(x)
            shortcut = L.BatchNormalization(name=f"bn{name}1")(shortcut)
        for part, (size, n, s) in zip("abc", ((1, filters, stride), (3, filters, 1),
                                              (1, filters * 4, 1))):
            x = L.Conv2D(n, size, strides=s, padding="same", name=f"res{name}2{part}")(x)
            x = L.BatchNormalization(name=f"bn{name}2{part}")(x)
            if part != "c":
                x = L.Activation("relu")(x)
        return L.Activation("relu")(L.Add()([x, shortcut]))

    inputs = k.Input((224, 224, 3))
    x = L.ZeroPadding2D(3)(inputs)
    x = L.Conv2D(64, 7, strides=2, name="conv1")(x)
    x = L.Activation("relu")(L.BatchNormalization(name="bn_conv1")(x))
    x = L.MaxPooling2D(3, strides=2, name="pool1")(L.ZeroPadding2D(1)(x))
    for stage, (filters, count) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), 2):
        for j in range(count):
            x = unit(x, filters, stage, chr(ord("a") + j), 1 if stage == 2 or j else 2, j == 0)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(1000, activation="softmax", name="fc1000")(x)
    return randomize(k.Model(inputs, x), seed)


def write_keras2_weights(path, layers):
    """Keras 2's `model.save_weights('x.h5')`: `layers` is [(layer name, [(weight name,
    array)])] in model order; weight names like 'conv1_conv/kernel:0'."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n, _ in layers]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.15.0"
        for name, weights in layers:
            g = f.create_group(name)
            g.attrs["weight_names"] = [w.encode() for w, _ in weights]
            for w, value in weights:
                g.create_dataset(w, data=np.asarray(value, np.float32))


_LEAVES = {"Conv2D": ("kernel", "bias"), "Dense": ("kernel", "bias"),
           "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance")}


def keras2_layers(model):
    """A Keras model's weights as write_keras2_weights takes them."""
    return [(layer.name, [(f"{layer.name}/{leaf}:0", v) for leaf, v in
                          zip(_LEAVES[type(layer).__name__], layer.get_weights())])
            for layer in model.layers if layer.get_weights()]


def forward(model, batch_nchw, layer_names):
    """Keras' own outputs of the named layers for an NCHW batch (Keras runs NHWC)."""
    k = keras()
    probe = k.Model(model.inputs, [model.get_layer(n).output for n in layer_names])
    got = probe.predict(np.ascontiguousarray(batch_nchw.transpose(0, 2, 3, 1)), verbose=0)
    return {n: (v.transpose(0, 3, 1, 2) if v.ndim == 4 else v)
            for n, v in zip(layer_names, got)}


def auto_number(name: str) -> int:
    """Keras' automatic number of a layer name (`conv2d` is 0, `conv2d_7` is 7)."""
    tail = name.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def unnamed(model, kind: str) -> list:
    """The model's layers of class `kind` that carry automatic names, in creation order."""
    auto = re.compile(r"(conv2d|batch_normalization)(_\d+)?")
    return sorted((layer for layer in model.layers
                   if type(layer).__name__ == kind and auto.fullmatch(layer.name)),
                  key=lambda layer: auto_number(layer.name))


def write_published(path, model, convs, bns, leaves):
    """A Keras application's published file layout: every layer a group at the root
    (`layer_names`), weight names with `:0`, the auto-named `convs` and `bns` named
    `conv2d_1` .. / `batch_normalization_1` .. as the published files number them; `leaves`
    gives each layer class's weight names (a class not in it holds none)."""
    import h5py

    rename = {layer.name: f"conv2d_{i}" for i, layer in enumerate(convs, 1)}
    rename.update({layer.name: f"batch_normalization_{i}" for i, layer in enumerate(bns, 1)})
    with h5py.File(path, "w") as f:
        names = [rename.get(layer.name, layer.name) for layer in model.layers]
        f.attrs["layer_names"] = [n.encode() for n in names]
        f.attrs["backend"] = b"tensorflow"
        for layer, name in zip(model.layers, names):
            g = f.create_group(name)
            arrays = layer.get_weights()
            weight_names = [f"{name}/{leaf}:0" for leaf in
                            leaves.get(type(layer).__name__, ())][:len(arrays)]
            g.attrs["weight_names"] = np.array([n.encode() for n in weight_names], dtype="S")
            for n, a in zip(weight_names, arrays):
                g.create_dataset(n, data=np.asarray(a, np.float32))
    return path


# ------------------------------------------------------------------ without Keras

def keras_layers_from_v1(spec, values):
    """[(layer name, class name, [arrays])] of a Keras ResNet holding the v1 `values` under
    keras.applications' names (conv kernels (kh, kw, in, out), zero conv biases, BN
    variances stored for eps 1.001e-5): what Keras would save, without building it."""
    from resnet.importers.base import STYLES, mapping

    table = {name: key for name, key, _, _ in mapping(spec, STYLES["keras"])}
    out = []
    for node in spec:
        if node.op == "conv":
            w = values[f"_{node.name}.w0"]
            out.append((table[f"_{node.name}.w0"].rsplit(".", 1)[0], "Conv2D",
                        [w.transpose(2, 3, 1, 0), np.zeros(w.shape[0], np.float32)]))
        elif node.op == "bn":
            v = [values[f"_{node.name}.{s}"] for s in ("w0", "wbias", "w1", "w2")]
            v[3] = (v[3] - np.float32(1.001e-5 - 1e-5)).astype(np.float32)
            out.append((table[f"_{node.name}.w0"].rsplit(".", 1)[0], "BatchNormalization", v))
        elif node.op == "fc":
            out.append(("predictions", "Dense", [values["_output.w0"], values["_output.wbias"]]))
    return out


def write_keras3_weights(path, layers, special=None):
    """Keras 3's `save_weights('x.weights.h5')` layout, as the Keras-built fixtures have it:
    `layers/<class folder>/vars/<i>` (folders conv2d, conv2d_1, ..., batch_normalization,
    ...), each `vars` group naming its layer, and an empty top-level `vars`.

    `special` maps 'layer/leaf' (leaf: kernel, bias, gamma, beta, moving_mean,
    moving_variance) to a function(group, dataset name, array) that creates that dataset
    itself (with external storage, say)."""
    import h5py

    leaves = {"Conv2D": ("kernel", "bias"), "Dense": ("kernel", "bias"),
              "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance")}
    counts = {}
    with h5py.File(path, "w") as f:
        f.create_group("vars")
        root = f.create_group("layers")
        for name, kind, arrays in layers:
            base = {"Conv2D": "conv2d", "Dense": "dense",
                    "BatchNormalization": "batch_normalization"}[kind]
            k = counts.get(base, 0)
            counts[base] = k + 1
            group = root.create_group(base if k == 0 else f"{base}_{k}").create_group("vars")
            group.attrs["name"] = name
            for i, (leaf, value) in enumerate(zip(leaves[kind], arrays)):
                make = (special or {}).get(f"{name}/{leaf}")
                if make:
                    make(group, str(i), np.asarray(value, np.float32))
                else:
                    group.create_dataset(str(i), data=np.asarray(value, np.float32))
    return path


def write_dot_keras(path, weights_h5, config=None):
    """A `.keras` zip as Keras 3 writes it: metadata.json, config.json, model.weights.h5
    (`config` is the config.json document, or text written as it is)."""
    import json
    import zipfile

    if config is None:
        config = {"class_name": "Functional", "config": {"name": "resnet", "layers": []}}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.6.0"}))
        z.writestr("config.json", config if isinstance(config, (str, bytes))
                   else json.dumps(config))
        z.write(weights_h5, "model.weights.h5")
    return path
