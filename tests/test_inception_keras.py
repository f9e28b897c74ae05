"""--from=keras: Keras applications' InceptionV3 converts, in every Keras file kind, to the
`inception_v3_keras` network computing what Keras computes.

Keras itself (jax backend) builds `keras.applications.InceptionV3(weights=None)` and is given
seeded weights (tests/vgg_weights.py: BN statistics from two probe photos; gamma 1, as
Keras' batch norms there have none): its conv layers, auto-named `conv2d..`, take the spec's
conv units in the order of their numbers, so Keras' own graph checks that order. It saves
them as `.keras`, a whole-model `.h5` and `.weights.h5`; the published application file
(`inception_v3_weights_tf_dim_ordering_tf_kernels.h5`: root groups `conv2d_1` ..
`conv2d_94`, weight names with `:0`, BN without gamma) is written with h5py. The reference is
Keras' own forward (NHWC) at mixed0, mixed5, mixed10, avg_pool, the logits and predictions.
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
ARCH = "inception_v3_keras"
#: Keras tensor -> the spec's node holding the same values (`logits`: predictions' Dense
#: without its softmax)
SAME = {"mixed0": "mixed0", "mixed5": "mixed5", "mixed10": "mixed10", "avg_pool": "avgpool",
        "logits": "fc", "predictions": "output"}
KINDS = ("published.h5", "keras", "h5", "weights.h5")
#: the kinds also run against Keras' forward, one per reader (root groups with ':0' names,
#: Keras 3's layers/<name>/vars); every kind's parameters must equal the seeded values
FORWARD = ("published.h5", "keras")


#: the published file's weight names per layer class (batch norms without gamma)
LEAVES = {"Conv2D": ("kernel",), "Dense": ("kernel", "bias"),
          "BatchNormalization": ("beta", "moving_mean", "moving_variance")}


def seeded():
    """The seeded v1 values with every BN gamma 1 (Keras' InceptionV3 has no gamma)."""
    values = dict(seeded_weights(ARCH, 7, KERAS_TF_299))
    for key in [k for k in values if k.endswith("_bn.w0")]:
        values[key] = np.ones_like(values[key])
    return values


def photos():
    return probe_batch(KERAS_TF_299)[:2]


@pytest.fixture(scope="module")
def inception(tmp_path_factory):
    """Keras' InceptionV3 holding the seeded weights, its outputs, and its four file kinds."""
    k = kf.keras()
    spec, values = build_arch(ARCH), seeded()
    model = k.applications.InceptionV3(weights=None)
    convs, bns = kf.unnamed(model, "Conv2D"), kf.unnamed(model, "BatchNormalization")
    units = [n.name[:-len("_conv")] for n in spec if n.op == "conv"]
    assert len(convs) == len(bns) == len(units) == 94
    for conv, bn, unit in zip(convs, bns, units):
        conv.set_weights([values[f"_{unit}_conv.w0"].transpose(2, 3, 1, 0)])
        bn.set_weights([values[f"_{unit}_bn.{s}"] for s in ("wbias", "w1", "w2")])
    model.get_layer("predictions").set_weights([values["_fc.w0"], values["_fc.wbias"]])
    logits = k.layers.Dense(1000, name="logits")
    outs = [model.get_layer(n).output for n in SAME if n != "logits"]
    probe = k.Model(model.inputs, outs + [logits(model.get_layer("avg_pool").output)])
    logits.set_weights(model.get_layer("predictions").get_weights())
    got = probe.predict(np.ascontiguousarray(photos().transpose(0, 2, 3, 1)), verbose=0)
    names = [n for n in SAME if n != "logits"] + ["logits"]
    want = {n: (v.transpose(0, 3, 1, 2) if v.ndim == 4 else v) for n, v in zip(names, got)}

    d = tmp_path_factory.mktemp("keras_inception")
    files = {"published.h5": d / "inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
             "keras": d / "inception_v3.keras", "h5": d / "inception_v3.h5",
             "weights.h5": d / "inception_v3.weights.h5"}
    kf.write_published(files["published.h5"], model, convs, bns, LEAVES)
    model.save(files["keras"])
    model.save(files["h5"])
    model.save_weights(files["weights.h5"])
    return files, want, values


@pytest.mark.parametrize("kind", KINDS)
def test_every_file_kind(inception, kind, tmp_path):
    """model.json records Keras' "tf" recipe at 299 and its accuracy; the parameters are the
    seeded values (variances up to the eps refold's rounding); the FORWARD kinds match
    Keras' own outputs."""
    files, want, values = inception
    convert("keras", str(files[kind]), str(tmp_path / "m"))
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    assert info["arch"] == ARCH
    assert info["preprocessing"] == KERAS_TF_299.to_json()
    assert info["preprocessing"]["crop"] == 299 and info["preprocessing"]["resize"] == "direct"
    assert (info["source"]["top1"], info["source"]["top5"]) == (77.9, 93.7)
    assert info["source"]["names"] == "keras"
    assert info["source"]["file"] == os.path.basename(files[kind])
    loaded = params.load_model(str(tmp_path / "m"), build_arch(ARCH))
    for name, v in loaded.items():
        if name.endswith("_bn.w2"):
            np.testing.assert_allclose(v, values[name], rtol=1e-6, atol=1e-9, err_msg=name)
        else:
            assert np.array_equal(v, values[name]), name
    if kind not in FORWARD:
        return
    got = resnet.load(str(tmp_path / "m")).run(photos(), list(SAME.values()))
    for theirs, ours in SAME.items():
        err = rel_err(got[ours].reshape(want[theirs].shape), want[theirs])  # avgpool: N x C
        assert err <= 1e-4, (ours, err)
    assert 0.05 < (got["mixed10"] > 0).mean() < 0.95  # alive: a wrong order would show


def test_a_keras_file_is_not_read_as_torchvision_inception(inception, tmp_path):
    """The Keras weights run only as Keras' network: asking for torchvision's inception_v3
    (pools counting the padding) is refused with one line naming the file."""
    files, _, _ = inception
    with pytest.raises(resnet.ResnetError) as e:
        convert("keras", str(files["published.h5"]), str(tmp_path / "m"), arch="inception_v3")
    line = str(e.value)
    assert "\n" not in line and str(files["published.h5"]) in line
    assert "inception_v3" in line or "Inception" in line, line
    assert not (tmp_path / "m").exists()
