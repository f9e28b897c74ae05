"""VGG from torchvision, timm and paddle.vision: each source's file converts to a model that
computes what the source's network computes.

The source files are derived from paddle.vision's own VGG (given the seeded weights of
tests/vgg_weights.py by walking its layers in its order): its `state_dict()` is the
paddle.vision file; torchvision's holds the same keys (paddle.vision builds `features` and
`classifier` as torchvision does) with torch's batch-norm names, a `num_batches_tracked`
counter and Linear weights (out, in); timm's is torchvision's renamed and reshaped as timm's
own loader (`_filter_fn` in timm/models/vgg.py) does for torchvision's weights. No key table
of the importer is used here.

The references: paddle.vision's forward (torchvision's network is the same function), and
for timm, paddle.vision's features followed by timm's head as timm defines it (fc1 a 7x7
conv over pool5, ReLU, fc2 a 1x1 conv, ReLU, global average pool, Linear). Each file is
0.5 GB, so each source is checked once at full size and deleted as soon as it is used;
detection from keys alone is checked for every architecture on zero-memory stand-ins.
"""
import filecmp
import json
import os
import shutil

import numpy as np
import pytest
from conftest import run_cli
from reference import rel_err
from test_convert import write_pth
from vgg_weights import EXAMPLES, PHOTOS, vgg_weights

import resnet
from resnet.common.arrays import transposed
from resnet.errors import ResnetError
from resnet.importers import IMPORTERS
from resnet.importers.base import convert, fit, styles_of
from resnet.inputs.imaging import preprocess
from resnet.modelio import modelinfo
from resnet.models.preprocessing import IMAGENET_RGB

# one worker: the VGG weights (0.5 GB each) are drawn once per process and shared
pytestmark = pytest.mark.xdist_group("vgg")

ARCHS = ("vgg16", "vgg16_bn", "vgg19", "vgg19_bn")
LAYERS = ("conv5_3", "pool5", "fc7_fc", "fc7", "fc8", "output")


# ------------------------------------------------------------------ the sources' files

def paddle_vision(arch, values=None):
    """paddle.vision's VGG for `arch`, in eval mode. With `values` (v1 files by name) its
    layers get them in its own order; without, it is built lazily (names and shapes only)."""
    import paddle
    from paddle.vision.models import vgg16, vgg19

    make = vgg16 if arch.startswith("vgg16") else vgg19
    if values is None:
        with paddle.LazyGuard():
            return make(pretrained=False, batch_norm=arch.endswith("_bn"))
    # every parameter is set below: zeros spare the default random fill of 138M values
    paddle.nn.initializer.set_global_initializer(paddle.nn.initializer.Constant(0.0),
                                                 paddle.nn.initializer.Constant(0.0))
    try:
        model = make(pretrained=False, batch_norm=arch.endswith("_bn"))
    finally:
        paddle.nn.initializer.set_global_initializer(None)
    model.eval()
    units = iter(sorted({k[1:].rsplit("_", 1)[0] for k in values if k.endswith("_conv.w0")},
                        key=lambda u: tuple(map(int, u[4:].split("_")))))
    for layer in model.features:
        kind = type(layer).__name__
        if kind == "Conv2D":
            unit = next(units)
            layer.weight.set_value(values[f"_{unit}_conv.w0"])
            layer.bias.set_value(values[f"_{unit}_conv.wbias"])
        elif kind == "BatchNorm2D":
            for attr, suffix in (("weight", "w0"), ("bias", "wbias"), ("_mean", "w1"),
                                 ("_variance", "w2")):
                getattr(layer, attr).set_value(values[f"_{unit}_bn.{suffix}"])
    fcs = iter(("fc6_fc", "fc7_fc", "fc8"))
    for layer in model.classifier:
        if type(layer).__name__ == "Linear":
            fc = next(fcs)
            layer.weight.set_value(values[f"_{fc}.w0"])  # Paddle's Linear is (in, out)
            layer.bias.set_value(values[f"_{fc}.wbias"])
    assert next(units, None) is None and next(fcs, None) is None
    return model


def paddle_state(model, stand_ins=False) -> dict:
    """The model's state_dict as numpy; `stand_ins`: zero-memory arrays of the same shapes."""
    if stand_ins:
        return {k: np.broadcast_to(np.float32(0), tuple(v.shape))
                for k, v in model.state_dict().items()}
    return {k: v.numpy() for k, v in model.state_dict().items()}


def torchvision_state(pd_state) -> dict:
    """torchvision's names and layouts: running_mean/var (+ num_batches_tracked after them),
    Linear weights (out, in)."""
    out = {}
    for key, value in pd_state.items():
        key = key.replace("._mean", ".running_mean").replace("._variance", ".running_var")
        out[key] = transposed(value) if key.startswith("classifier.") and value.ndim == 2 else value
        if key.endswith(".running_var"):
            out[key[:-len("running_var")] + "num_batches_tracked"] = np.array(5004, np.int64)
    return out


def timm_state(tv_state) -> dict:
    """timm's `_filter_fn`: classifier.0/3/6 -> pre_logits.fc1 (reshaped to (-1, 512, 7, 7)),
    pre_logits.fc2 (reshaped to (-1, 4096, 1, 1)), head.fc."""
    out = {}
    for key, value in tv_state.items():
        if key == "classifier.0.weight":
            value = value.reshape(-1, 512, 7, 7)
        elif key == "classifier.3.weight":
            value = value.reshape(-1, 4096, 1, 1)
        key = (key.replace("classifier.0", "pre_logits.fc1")
               .replace("classifier.3", "pre_logits.fc2").replace("classifier.6", "head.fc"))
        out[key] = value
    return out


# ------------------------------------------------------------------ the references

def photo_batch(count=1):
    return np.concatenate([preprocess(os.path.join(EXAMPLES, p), IMAGENET_RGB)
                           for p in PHOTOS[:count]])


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def paddle_vision_forward(model, x) -> dict:
    """The source network's outputs, by the spec's names: conv5_3 (the last conv unit's
    ReLU), pool5 (the last `features` layer), fc7_fc / fc7 (classifier 3 and its ReLU), fc8."""
    import paddle

    taps, block, unit = {}, 1, 0
    for layer in model.features:  # the ReLUs of block 5's conv units: conv5_1, conv5_2, ...
        kind = type(layer).__name__
        unit, block = (unit + 1, block) if kind == "Conv2D" else \
            (0, block + 1) if kind == "MaxPool2D" else (unit, block)
        if kind == "ReLU" and block == 5 and unit >= 3:
            taps[f"conv5_{unit}"] = layer
    taps.update({"pool5": model.features[-1], "fc7_fc": model.classifier[3],
                 "fc7": model.classifier[4], "fc8": model.classifier[6]})
    assert type(taps["fc7"]).__name__ == "ReLU"
    out, hooks = {}, []
    for name, layer in taps.items():
        hooks.append(layer.register_forward_post_hook(
            lambda _, __, y, name=name: out.__setitem__(name, y.numpy())))
    with paddle.no_grad():
        out["output"] = paddle.nn.functional.softmax(model(paddle.to_tensor(x))).numpy()
    for h in hooks:
        h.remove()
    return out


def timm_head(pool5, timm) -> dict:
    """timm's ConvMlp and ClassifierHead on pool5, from the timm file's own arrays."""
    import paddle
    import paddle.nn.functional as F

    t = paddle.to_tensor
    with paddle.no_grad():
        y = F.relu(F.conv2d(t(pool5), t(timm["pre_logits.fc1.weight"]),
                            t(timm["pre_logits.fc1.bias"])))
        fc7_fc = F.conv2d(y, t(np.ascontiguousarray(timm["pre_logits.fc2.weight"])),
                          t(timm["pre_logits.fc2.bias"]))
        fc7 = F.relu(fc7_fc).mean(axis=(2, 3))  # the head's global average pool, then flatten
        fc8 = paddle.matmul(fc7, t(timm["head.fc.weight"]), transpose_y=True) \
            + t(timm["head.fc.bias"])
    return {"fc7_fc": fc7_fc.numpy()[:, :, 0, 0], "fc7": fc7.numpy(), "fc8": fc8.numpy(),
            "output": softmax(fc8.numpy())}


def check_converted(model_dir, batch, want):
    """The converted model's layers on `batch` against `want`; the folder is deleted."""
    assert set(LAYERS) <= set(want)
    got = resnet.load(str(model_dir)).run(batch, list(want))
    shutil.rmtree(model_dir)
    for name in want:  # VGG-19's conv5_4 too
        err = rel_err(got[name], want[name])
        assert err <= 1e-4, (name, err)
    assert 0.05 < (got["fc7"] > 0).mean() < 0.95  # alive: the comparison means something
    assert got["output"].max() > 2 * got["output"].min()


def check_info(model_dir, arch, names, fmt, top=None):
    doc = json.loads((model_dir / "model.json").read_text())
    assert doc["arch"] == arch
    assert (doc["source"]["names"], doc["source"]["format"]) == (names, fmt)
    if top:
        assert (doc["source"]["top1"], doc["source"]["top5"]) == top
    else:
        assert "top1" not in doc["source"] and "top5" not in doc["source"]
    assert modelinfo.read(str(model_dir)).preprocessing == IMAGENET_RGB


# ------------------------------------------------------------------ full size, per source

def test_torchvision_vgg16_bn_pth(tmp_path):
    """torchvision's vgg16_bn-6c64b313.pth, through the CLI: BN statistics, conv biases
    beside the batch norms, num_batches_tracked ignored, Linear weights transposed."""
    model = paddle_vision("vgg16_bn", vgg_weights("vgg16_bn"))
    batch = photo_batch()
    want = paddle_vision_forward(model, batch)
    src, out = tmp_path / "vgg16_bn-6c64b313.pth", tmp_path / "model"
    write_pth(src, {k: np.ascontiguousarray(v)
                    for k, v in torchvision_state(paddle_state(model)).items()})
    del model
    r = run_cli("--job=convert", "--from=torchvision", f"--input={src}", f"--model={out}")
    assert r.returncode == 0, r.stderr
    os.remove(src)
    check_info(out, "vgg16_bn", "torchvision", "torchvision", (73.360, 91.516))
    check_converted(out, batch, want)


def test_timm_vgg16_pth_and_safetensors(tmp_path):
    """timm's vgg16.tv_in1k as a .pth and as the hub's model.safetensors: fc6 and fc7 are
    conv kernels, reshaped back into the spec's fc weights."""
    from safetensors.numpy import save_file

    # vgg16_bn's conv and fc arrays are drawn as vgg16's are, and are made already
    model = paddle_vision("vgg16", {k: v for k, v in vgg_weights("vgg16_bn").items()
                                    if "_bn." not in k})
    timm = {k: np.ascontiguousarray(v)
            for k, v in timm_state(torchvision_state(paddle_state(model))).items()}
    assert timm["pre_logits.fc1.weight"].shape == (4096, 512, 7, 7)
    batch = photo_batch()
    want = paddle_vision_forward(model, batch)
    del model
    head = timm_head(want["pool5"], timm)
    for name in ("fc7_fc", "fc7", "fc8"):  # timm's head is torchvision's at 224
        assert rel_err(head[name], want[name]) <= 1e-4, name
    want.update(head)
    for fmt, src in (("torchvision", tmp_path / "vgg16.pth"),
                     ("safetensors", tmp_path / "model.safetensors")):
        write_pth(src, timm) if fmt == "torchvision" else save_file(timm, str(src))
        info = convert(fmt, str(src), str(tmp_path / fmt))
        os.remove(src)
        assert info.arch == "vgg16"
        check_info(tmp_path / fmt, "vgg16", "timm", fmt, (71.594, 90.398))
    del timm
    # the same arrays under the same names: the same v1 files, so one run checks both
    files = sorted(f for f in os.listdir(tmp_path / "torchvision") if f != "model.json")
    assert files == sorted(f for f in os.listdir(tmp_path / "safetensors") if f != "model.json")
    _, differ, errors = filecmp.cmpfiles(tmp_path / "torchvision", tmp_path / "safetensors",
                                         files, shallow=False)
    assert not differ and not errors, (differ, errors)
    shutil.rmtree(tmp_path / "safetensors")
    check_converted(tmp_path / "torchvision", batch, want)


def test_paddle_vision_vgg19_pdparams(tmp_path):
    """paddle.vision's vgg19.pdparams: Linear weights (in, out) as they are; no accuracy is
    published for it, so model.json claims none."""
    import paddle

    model = paddle_vision("vgg19", vgg_weights("vgg19"))
    batch = photo_batch()
    want = paddle_vision_forward(model, batch)
    src, out = tmp_path / "vgg19.pdparams", tmp_path / "model"
    paddle.save(paddle_state(model), str(src))
    del model
    info = convert("paddle", str(src), str(out))
    os.remove(src)
    assert info.arch == "vgg19"
    check_info(out, "vgg19", "paddle.vision", "paddle")
    check_converted(out, batch, want)


# ------------------------------------------------------------------ keys alone

NAMINGS = {"torchvision": (("torchvision", "safetensors"), torchvision_state),
           "timm": (("torchvision", "safetensors"), lambda s: timm_state(torchvision_state(s))),
           "paddle.vision": (("paddle", "safetensors"), lambda s: s)}


def fit_keys(fmt, state, arch=None):
    importer = IMPORTERS[fmt]
    return fit(state, styles_of(fmt), None, getattr(importer, "variants", ("v1.5",)),
               f"x.{fmt}", arch)


@pytest.mark.parametrize("naming", NAMINGS)
def test_keys_alone_tell_the_architecture(naming):
    """Every VGG architecture under each source's names is told from the others by its keys
    and shapes, in each format those names come in."""
    formats, rename = NAMINGS[naming]
    for arch in ARCHS:
        state = rename(paddle_state(paddle_vision(arch), stand_ins=True))
        for fmt in formats:
            spec, style = fit_keys(fmt, state)
            assert (spec.arch, style.name) == (arch, naming), fmt


def test_other_heads_are_refused_naming_the_mismatches():
    """A 10-class fine-tune of torchvision's vgg19_bn fits no network: the line names the
    closest one and its mismatched keys with their shapes."""
    state = torchvision_state(paddle_state(paddle_vision("vgg19_bn"), stand_ins=True))
    state["classifier.6.weight"] = np.broadcast_to(np.float32(0), (10, 4096))
    state["classifier.6.bias"] = np.broadcast_to(np.float32(0), (10,))
    for arch in (None, "vgg19_bn"):
        with pytest.raises(ResnetError) as e:
            fit_keys("torchvision", state, arch)
        line = str(e.value)
        assert "\n" not in line
        for word in ("x.torchvision", "VGG-19 with batch norm", "(torchvision vgg19_bn names)",
                     "2 mismatches", "classifier.6.weight has shape (10, 4096), expected "
                     "(1000, 4096)", "classifier.6.bias has shape (10,), expected (1000,)"):
            assert word in line, (word, line)


def test_features_only_checkpoint_refused_in_one_line(tmp_path):
    """A file of VGG-16's `features` alone (no classifier): one line says which network it
    comes closest to and what is missing, and nothing is written."""
    state = paddle_state(paddle_vision("vgg16"), stand_ins=True)
    src, out = tmp_path / "vgg16_features.pth", tmp_path / "model"
    write_pth(src, {k: np.zeros(v.shape, np.float32) for k, v in state.items()
                    if k.startswith("features.")})
    with pytest.raises(ResnetError) as e:
        convert("torchvision", str(src), str(out))
    line = str(e.value)
    assert "\n" not in line
    for word in (str(src), "VGG-16 (torchvision vgg16 names)", "6 mismatches",
                 "missing classifier.0.weight"):
        assert word in line, (word, line)
    assert not out.exists()
