"""Xception against Keras' own (jax backend): every layer Keras names, and --from=keras in
every Keras file kind.

Keras builds `keras.applications.Xception(weights=None)` and is given seeded weights
(tests/vgg_weights.py: BN statistics from two probe photos): its named layers by their
names, its four unnamed residual convs and batch norms in the order of their automatic
numbers, so Keras' own graph checks both. Each Keras layer's output is compared with the
spec's node of the same name (a SeparableConv2D's with the pointwise node), `avg_pool` with
`avgpool`, the logits and `predictions` with `fc` and `output`. Keras then saves the model as
`.keras`, a whole-model `.h5` and `.weights.h5`; the published file
(`xception_weights_tf_dim_ordering_tf_kernels.h5`: root groups, `:0` names, the residual
layers `conv2d_1` .. `conv2d_4`) is written with h5py.
"""
import json
import os

import numpy as np
import pytest
from reference import rel_err
import keras_files as kf  # sets KERAS_BACKEND=jax before Keras is imported
from vgg_weights import probe_batch, seeded_weights

import resnet
from resnet.importers.base import convert
from resnet.modelio import params
from resnet.models import build_arch
from resnet.models.preprocessing import KERAS_TF_299

pytest.importorskip("jax", reason="jax (Keras' backend in the tests) not installed: "
                              "pip install '.[test]'")
pytest.importorskip("keras", reason="keras not installed: pip install '.[test]'")

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # Keras on numpy 2
              pytest.mark.xdist_group("keras")]
ARCH = "xception"
KINDS = ("published.h5", "keras", "h5", "weights.h5")
FORWARD = ("published.h5", "keras")
HEAD = {"avg_pool": "avgpool", "logits": "fc", "predictions": "output"}
RESIDUAL = ("block2", "block3", "block4", "block13")


def photos():
    return probe_batch(KERAS_TF_299)[:2]


#: the published file's weight names per layer class
LEAVES = {"Conv2D": ("kernel",), "Dense": ("kernel", "bias"),
          "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel"),
          "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance")}


@pytest.fixture(scope="module")
def xception(tmp_path_factory):
    """Keras' Xception holding the seeded weights, its outputs by spec name, its files."""
    k = kf.keras()
    spec, values = build_arch(ARCH), seeded_weights(ARCH, 11, KERAS_TF_299)
    model = k.applications.Xception(weights=None)
    convs, bns = kf.unnamed(model, "Conv2D"), kf.unnamed(model, "BatchNormalization")
    assert len(convs) == len(bns) == 4
    for block, conv, bn in zip(RESIDUAL, convs, bns):
        conv.set_weights([values[f"_{block}_residual.w0"].transpose(2, 3, 1, 0)])
        bn.set_weights([values[f"_{block}_residual_bn.{s}"] for s in ("w0", "wbias", "w1", "w2")])
    compared = []
    for layer in model.layers:
        kind, name = type(layer).__name__, layer.name
        if kind == "SeparableConv2D":
            dw = values[f"_{name}_depthwise.w0"]  # (C, 1, 3, 3) -> (3, 3, C, 1)
            layer.set_weights([dw.transpose(2, 3, 0, 1),
                               values[f"_{name}.w0"].transpose(2, 3, 1, 0)])
        elif kind == "Conv2D" and name.startswith("block"):
            layer.set_weights([values[f"_{name}.w0"].transpose(2, 3, 1, 0)])
        elif kind == "BatchNormalization" and name.startswith("block"):
            layer.set_weights([values[f"_{name}.{s}"] for s in ("w0", "wbias", "w1", "w2")])
        if name in spec:
            compared.append(name)
    model.get_layer("predictions").set_weights([values["_fc.w0"], values["_fc.wbias"]])
    # every spec layer but the ones Keras leaves unnamed (residuals, adds), the depthwise
    # halves inside its SeparableConv2D, and the head compared below
    assert set(compared) == {n.name for n in spec if n.op not in ("data", "addto", "fc",
                                                                  "softmax")
                             and "residual" not in n.name and "depthwise" not in n.name
                             and n.name != "avgpool"}
    logits = k.layers.Dense(1000, name="logits")
    names = compared + ["avg_pool", "predictions"]
    probe = k.Model(model.inputs, [model.get_layer(n).output for n in names]
                    + [logits(model.get_layer("avg_pool").output)])
    logits.set_weights(model.get_layer("predictions").get_weights())
    got = probe.predict(np.ascontiguousarray(photos().transpose(0, 2, 3, 1)), verbose=0)
    want = {HEAD.get(n, n): (v.transpose(0, 3, 1, 2) if v.ndim == 4 else v)
            for n, v in zip(names + ["logits"], got)}

    d = tmp_path_factory.mktemp("keras_xception")
    files = {"published.h5": d / "xception_weights_tf_dim_ordering_tf_kernels.h5",
             "keras": d / "xception.keras", "h5": d / "xception.h5",
             "weights.h5": d / "xception.weights.h5"}
    kf.write_published(files["published.h5"], model, convs, bns, LEAVES)
    model.save(files["keras"])
    model.save(files["h5"])
    model.save_weights(files["weights.h5"])
    return files, want, values


def test_every_layer_matches_keras(xception):
    """Every layer Keras names (convs, separable convs, BNs, ReLUs, TF-"same" pools) and the
    head, within 1e-4 of Keras' own forward on the same weights."""
    _, want, values = xception
    from resnet.runtime.network import Network

    spec = build_arch(ARCH)
    got = Network(spec).load_params(values).run(photos(), list(want))
    for name, theirs in want.items():
        err = rel_err(got[name].reshape(theirs.shape), theirs)
        assert err <= 1e-4, (name, err)
    assert 0.05 < (got["block14_sepconv2_act"] > 0).mean() < 0.95  # alive


@pytest.mark.parametrize("kind", KINDS)
def test_every_file_kind(xception, kind, tmp_path):
    """model.json records Keras' "tf" recipe at 299 and its accuracy; the parameters are the
    seeded values; the FORWARD kinds match Keras at block14_sepconv2_act, avgpool, output."""
    files, want, values = xception
    convert("keras", str(files[kind]), str(tmp_path / "m"))
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    assert info["arch"] == ARCH and info["source"]["names"] == "keras"
    assert info["preprocessing"] == KERAS_TF_299.to_json()
    assert (info["source"]["top1"], info["source"]["top5"]) == (79.0, 94.5)
    assert info["source"]["file"] == os.path.basename(files[kind])
    for name, v in params.load_model(str(tmp_path / "m"), build_arch(ARCH)).items():
        if name.endswith("_bn.w2"):
            np.testing.assert_allclose(v, values[name], rtol=1e-6, atol=1e-9, err_msg=name)
        else:
            assert np.array_equal(v, values[name]), name
    if kind not in FORWARD:
        return
    names = ["block14_sepconv2_act", "avgpool", "output"]
    got = resnet.load(str(tmp_path / "m")).run(photos(), names)
    for name in names:
        assert rel_err(got[name].reshape(want[name].shape), want[name]) <= 1e-4, name
