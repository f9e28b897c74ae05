"""Keras ResNets with seeded random weights, built by Keras 3 itself (jax backend) and saved in
its file formats; plus the two layouts Keras 3 cannot write any more, written with h5py as
Keras 2 writes them: `save_weights('x.h5')` (layer_names / weight_names attributes, names with
':0') and the older keras-applications ResNet50 file (Caffe layer names, BN eps 1e-3)."""
import os

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")


def keras():
    import keras as k

    return k


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
