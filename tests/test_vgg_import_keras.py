"""--from=keras: Keras applications' VGG16 and VGG19 convert to models that compute what
Keras computes.

Keras itself (jax backend) builds `keras.applications.VGG16(weights=None)` and is given
the seeded weights of tests/vgg_weights.py, turned into Keras' layouts here (conv kernels
(kh, kw, in, out); fc1's rows in Keras' (H, W, C) flatten order), then saves them as
`.keras`; VGG19's `.weights.h5` is written in Keras' layout by h5py. The published file
(`vgg16_weights_tf_dim_ordering_tf_kernels.h5`: one group per layer at the root, weight
names with `:0`), which Keras 3 no longer writes, is written with h5py in that layout. The
reference is Keras' own forward (NHWC) on the photos as model.json's recipe prepares them.
Keras' model is built once; each 0.5 GB file is deleted once used.
"""
import json
import os

import h5py
import numpy as np
import pytest
from reference import rel_err
import keras_files as kf  # sets KERAS_BACKEND=jax before Keras is imported
from vgg_weights import EXAMPLES, PHOTOS, vgg_weights

import resnet
from resnet.errors import ResnetError
from resnet.importers.base import convert
from resnet.inputs.imaging import preprocess
from resnet.modelio import params
from resnet.models import build_arch
from resnet.models.preprocessing import KERAS_CAFFE

pytest.importorskip("jax", reason="jax (Keras' backend in the tests) not installed: "
                              "pip install '.[test]'")
pytest.importorskip("keras", reason="keras not installed: pip install '.[test]'")

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # Keras on numpy 2
              pytest.mark.xdist_group("keras")]
#: Keras tensor -> the spec's node holding the same values (Keras fuses each conv's and
#: fc2's ReLU into the layer; `logits` is predictions' Dense without its softmax)
SAME = {"block3_conv2": "conv3_2", "block5_pool": "pool5", "fc2": "fc7", "logits": "fc8",
        "predictions": "output"}
#: one file kind per reader (root groups with ':0' names; Keras 3's layers/<name>/vars),
#: each also run against Keras' forward; the other two kinds (a whole-model .h5 and a
#: .weights.h5, read by the same two readers) are covered by the ResNet, Inception and
#: Xception tests, which convert all four
KINDS = ("published.h5", "keras")
FORWARD = KINDS


def photos():
    """Two example photos as Keras' VGG preprocessing prepares them (NCHW)."""
    return np.concatenate([preprocess(os.path.join(EXAMPLES, n), KERAS_CAFFE)
                           for n in PHOTOS[:2]])


def keras_layers(arch):
    """(Keras layer name, [kernel, bias]) of every weight layer, from the seeded v1 values of
    `arch`: conv (out, in, kh, kw) -> (kh, kw, in, out); fc6's rows (C, H, W) -> Keras'
    (H, W, C) flatten of block5's 7x7x512 map; Dense kernels are (in, out) in both."""
    values = vgg_weights(arch)
    out = []
    for key in sorted(k for k in values if k.endswith("_conv.w0")):
        b, i = key[len("_conv"):-len("_conv.w0")].split("_")
        out.append((f"block{b}_conv{i}", [values[key].transpose(2, 3, 1, 0),
                                           values[key[:-2] + "wbias"]]))
    out.sort(key=lambda t: t[0])
    fc6 = values["_fc6_fc.w0"].reshape(512, 7, 7, 4096).transpose(1, 2, 0, 3)
    out += [("fc1", [fc6.reshape(25088, 4096), values["_fc6_fc.wbias"]]),
            ("fc2", [values["_fc7_fc.w0"], values["_fc7_fc.wbias"]]),
            ("predictions", [values["_fc8.w0"], values["_fc8.wbias"]])]
    return out


def keras_vgg(arch):
    """Keras' VGG holding the seeded weights, and its outputs (NCHW) for the photos."""
    k = kf.keras()
    with pytest.MonkeyPatch.context() as mp:  # every weight is set below: zeros spare
        # Keras the random fill of 138M values (its Glorot initializers are VarianceScaling)
        mp.setattr(k.initializers.VarianceScaling, "__call__",
                   lambda self, shape, dtype=None: k.ops.zeros(shape, dtype=dtype))
        model = getattr(k.applications, arch.upper())(weights=None)
    layers = keras_layers(arch)
    assert len(layers) == sum(1 for layer in model.layers if layer.get_weights())
    for name, arrays in layers:
        model.get_layer(name).set_weights([np.ascontiguousarray(a) for a in arrays])
    logits = k.layers.Dense(1000, name="logits")
    outs = [model.get_layer(n).output for n in SAME if n != "logits"]
    probe = k.Model(model.inputs, outs + [logits(model.get_layer("fc2").output)])
    logits.set_weights(model.get_layer("predictions").get_weights())
    got = probe.predict(np.ascontiguousarray(photos().transpose(0, 2, 3, 1)), verbose=0)
    names = [n for n in SAME if n != "logits"] + ["logits"]
    want = {n: (v.transpose(0, 3, 1, 2) if v.ndim == 4 else v) for n, v in zip(names, got)}
    return model, want


def _text(value) -> str:
    """An h5py string attribute's item, which h5py gives as str or bytes."""
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.fixture(scope="module")
def vgg16(tmp_path_factory):
    """VGG16 in two Keras file kinds (one per reader), and Keras' outputs."""
    d = tmp_path_factory.mktemp("keras_vgg16")
    model, want = keras_vgg("vgg16")
    files = {"published.h5": kf.write_published(
                 d / "vgg16_weights_tf_dim_ordering_tf_kernels.h5", model, [], [],
                 {"Conv2D": ("kernel", "bias"), "Dense": ("kernel", "bias")}),
             "keras": d / "vgg16.keras"}
    model.save(files["keras"])
    del model
    yield files, want
    for path in files.values():  # 0.5 GB each; the tests remove those they are done with
        if path.exists():
            path.unlink()


def check(model_dir, want, arch, source_file, forward=True):
    """model.json records Keras' recipe and accuracy; the parameter files hold exactly the
    seeded values; with `forward`, every SAME layer matches Keras' own output."""
    info = json.loads((model_dir / "model.json").read_text())
    assert info["arch"] == arch
    assert info["preprocessing"] == KERAS_CAFFE.to_json()
    top1, top5 = {"vgg16": (71.3, 90.1), "vgg19": (71.3, 90.0)}[arch]
    assert (info["source"]["top1"], info["source"]["top5"]) == (top1, top5)
    assert info["source"]["format"] == "keras" and info["source"]["names"] == "keras"
    assert info["source"]["file"] == os.path.basename(source_file)
    spec = build_arch(arch)
    values = vgg_weights(arch)
    for name, v in params.load_model(str(model_dir), spec).items():
        assert np.array_equal(v, values[name]), name
    if not forward:
        return
    got = resnet.load(str(model_dir)).run(photos(), list(SAME.values()))
    for theirs, ours in SAME.items():
        err = rel_err(got[ours], want[theirs])
        assert err <= 1e-4, (ours, err)
    assert 0.05 < (got["fc7"] > 0).mean() < 0.95  # alive: a wrong fc1 order would show


@pytest.mark.parametrize("kind", KINDS)
def test_vgg16_every_file_kind(vgg16, kind, tmp_path):
    files, want = vgg16
    convert("keras", str(files[kind]), str(tmp_path / "m"))
    check(tmp_path / "m", want, "vgg16", files[kind], forward=kind in FORWARD)
    if kind != "published.h5":  # the notop test below still reads it
        os.remove(files[kind])


def test_vgg16_notop_is_refused_naming_the_head(vgg16, tmp_path):
    """A file of the convs alone (Keras' `_notop` weights) fits no network: the line names
    VGG-16 and the missing head, and nothing is written."""
    files, _ = vgg16
    src, out = tmp_path / "vgg16_notop.h5", tmp_path / "m"
    with h5py.File(files["published.h5"], "r") as full, h5py.File(src, "w") as f:
        names = [n for n in map(_text, full.attrs["layer_names"]) if n.startswith("block")]
        f.attrs["layer_names"] = [n.encode() for n in names]
        for n in names:
            full.copy(full[n], f, n)
    with pytest.raises(ResnetError) as e:
        convert("keras", str(src), str(out))
    line = str(e.value)
    assert "\n" not in line
    for word in (str(src), "VGG-16", "6 mismatches", "missing fc1.weight",
                 "missing predictions.weight"):
        assert word in line, (word, line)
    assert not out.exists()


def test_vgg19_weights_h5(tmp_path):
    """VGG19's names in a Keras 3 `.weights.h5`, written in Keras' layout without building
    Keras' 144M-value model (VGG16's files above run Keras' own writer and forward; the
    network itself is checked against paddle.vision in test_vgg.py): the converted
    parameters are the seeded values, bit for bit."""
    layers = [(name, "Dense" if name in ("fc1", "fc2", "predictions") else "Conv2D", arrays)
              for name, arrays in keras_layers("vgg19")]
    path = kf.write_keras3_weights(tmp_path / "vgg19.weights.h5", layers)
    convert("keras", str(path), str(tmp_path / "m"))
    check(tmp_path / "m", None, "vgg19", path, forward=False)
