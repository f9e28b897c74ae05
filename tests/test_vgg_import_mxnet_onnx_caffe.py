"""VGG from MXNet, the ONNX model zoo and Caffe: each source's file converts to a model that
computes what the source computes, on the photos as its model.json preprocesses them.

The files are written here from the seeded VGG weights (tests/vgg_weights.py) under each
source's names and layouts, taken from the sources' own definitions (not from the
importer's tables): Gluon's ONNX export (`vgg0_conv{k}_weight`, ..., run by onnxruntime),
caffe2's ONNX export (`conv1_1_w_0`, ..., with its Reshape and softmax), Gluon's
`save_parameters` indices (`features.N`), MXNet's caffe-converted symbolic files (conv1's
input channels reversed to RGB, as MXNet's converter does) and the Caffe VGG team's
`.caffemodel` (in the V1 layer format it was published in). Where no source library runs
here, the reference is VGG written out below with Paddle's functional ops, reading the
source's arrays by the source's own names. Every file is 0.5 GB: each source is checked once
at full size, on one or two photos, and big files are deleted as soon as they are used.
"""
import importlib.util
import json
import os
import shutil

import numpy as np
import pytest
from conftest import run_cli
from mxnet_files import write_params
from reference import rel_err
from vgg_weights import EXAMPLES, PHOTOS, vgg_weights

import resnet
from resnet.common.arrays import transposed
from resnet.inputs.imaging import preprocess
from resnet.models.preprocessing import DEFAULT_BGR, V1
from resnet.modelio import modelinfo

# one worker: the VGG weights (0.5 GB each) are drawn once per process and shared
pytestmark = pytest.mark.xdist_group("vgg")

BLOCKS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
#: the layers compared: pool5, fc7 before and after its ReLU, the logits
LAYERS = ("pool5", "fc7_fc", "fc7", "fc8")
#: Gluon's `features` indices of VGG-16's convs, fc6 and fc7 (model_zoo/vision/vgg.py: conv,
#: ReLU per unit, a pool per block, then Dense, Dropout, Dense, Dropout)
GLUON16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
GLUON16_FC = (31, 33)


def units(depth):
    """Caffe's conv names in order: conv1_1, conv1_2, conv2_1, ..."""
    return [f"conv{b}_{i}" for b, n in enumerate(BLOCKS[depth], 1) for i in range(1, n + 1)]


def photo_batch(recipe, count):
    return np.concatenate([preprocess(os.path.join(EXAMPLES, p), recipe)
                           for p in PHOTOS[:count]])


def convert(src, model, *extra):
    r = run_cli("--job=convert", f"--input={src}", f"--model={model}", *extra)
    assert r.returncode == 0, r.stderr
    os.remove(src)
    return json.loads((model / "model.json").read_text())


def converted(model, batch, layers=LAYERS + ("output",)):
    """The converted model's layers on `batch`; the model folder is deleted afterwards."""
    got = resnet.load(str(model)).run(batch, list(layers))
    shutil.rmtree(model)
    return got


def same(got, want, names):
    for ours, theirs in names:
        err = rel_err(got[ours], want[theirs])
        assert err <= 1e-4, (ours, err)


def for_imagenet_rgb(values):
    """A copy of v1 `values` whose conv1 takes RGB /255 mean/std input (the Gluon and ONNX zoo
    recipe) in place of BGR minus the mean pixel, so that activations keep the range the BN
    statistics were taken at: the channels reversed, scaled by 255 std, and the bias moved by
    what the two means contribute (exact away from the zero padding)."""
    from resnet.models.preprocessing import IMAGENET_RGB

    w, b = values["_conv1_1_conv.w0"], values["_conv1_1_conv.wbias"]
    rgb_w = w[:, ::-1] * (255.0 * np.asarray(IMAGENET_RGB.std))[None, :, None, None]
    shift = 255.0 * np.asarray(IMAGENET_RGB.mean)[::-1] - np.asarray(DEFAULT_BGR)
    out = dict(values)
    out["_conv1_1_conv.w0"] = np.ascontiguousarray(rgb_w, np.float32)
    out["_conv1_1_conv.wbias"] = (b + np.einsum("oihw,i->o", w, shift)).astype(np.float32)
    return out


def vgg_reference(x, convs, fcs, depth):
    """VGG as Simonyan and Zisserman define it, from (weight (out, in, 3, 3), bias) per conv
    and (weight (out, in), bias) for fc6, fc7, fc8: conv 3x3 pad 1 + ReLU, a 2x2/2 max pool
    after each block, flatten in (C, H, W) order, fc6 + ReLU, fc7 + ReLU, fc8."""
    import paddle
    import paddle.nn.functional as F

    t = paddle.to_tensor
    out, convs = {}, iter(convs)
    with paddle.no_grad():
        y = t(x)
        for count in BLOCKS[depth]:
            for _ in range(count):
                w, b = next(convs)
                y = F.relu(F.conv2d(y, t(w), t(b), padding=1))
            y = F.max_pool2d(y, 2, 2)
        out["pool5"] = y
        y = y.reshape([y.shape[0], -1])
        for name, (w, b) in zip(("fc6", "fc7", "fc8"), fcs):
            y = paddle.matmul(y, t(w), transpose_y=True) + t(b)
            out[f"{name}_fc"] = y
            if name != "fc8":
                y = out[name] = F.relu(y)
        out["fc8"] = out.pop("fc8_fc")
    return {k: v.numpy() for k, v in out.items()}


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ------------------------------------------------------------------ ONNX zoo, Gluon's export

_MISSING = [m for m in ("onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
needs_onnx = pytest.mark.skipif(bool(_MISSING), reason=f"{' and '.join(_MISSING)} not "
                                "installed: pip install '.[export]'")


class Graph:
    def __init__(self):
        self.nodes, self.inits = [], []

    def init(self, name, value, dtype=np.float32):
        self.inits.append((name, np.asarray(value, dtype)))
        return name

    def op(self, kind, inputs, output, **attrs):
        from onnx import helper

        self.nodes.append(helper.make_node(kind, inputs, [output], **attrs))
        return output

    def save(self, path, data, shape, outputs, opset, ir):
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            self.nodes, "vgg", [helper.make_tensor_value_info(data, TensorProto.FLOAT, shape)],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                                  producer_name="mxnet" if opset == 7 else "onnx-caffe2")
        model.ir_version = ir
        for name, value in self.inits:  # filled in place: helper copies 0.5 GB each time
            t = model.graph.initializer.add()
            t.name, t.data_type = name, helper.np_dtype_to_tensor_dtype(value.dtype)
            t.dims.extend(value.shape)
            t.raw_data = value.astype(value.dtype.newbyteorder("<")).tobytes()
        with open(path, "wb") as f:
            f.write(model.SerializeToString())


def gluon_vgg16_bn_onnx(path, values, first_eps):
    """The ONNX zoo's vgg16-bn-7: Gluon's graph and names as mxnet's exporter writes them
    (Conv, BatchNormalization, Relu per unit; MaxPool; Flatten; Gemm with (out, in) weights
    and transB; Dropout; logits out, no softmax). The first batch norm says `first_eps`."""
    g, x, k = Graph(), "data", 0
    for b, count in enumerate(BLOCKS[16], 1):
        for i in range(1, count + 1):
            v = f"_conv{b}_{i}"
            x = g.op("Conv", [x, g.init(f"vgg0_conv{k}_weight", values[f"{v}_conv.w0"]),
                              g.init(f"vgg0_conv{k}_bias", values[f"{v}_conv.wbias"])],
                     f"vgg0_conv{k}_fwd", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                     strides=[1, 1])
            bn = [g.init(f"vgg0_batchnorm{k}_{leaf}", values[f"{v}_bn.{s}"])
                  for leaf, s in (("gamma", "w0"), ("beta", "wbias"), ("running_mean", "w1"),
                                  ("running_var", "w2"))]
            x = g.op("BatchNormalization", [x] + bn, f"vgg0_batchnorm{k}_fwd",
                     epsilon=first_eps if k == 0 else 1e-5)
            x = g.op("Relu", [x], f"vgg0_relu{k}_fwd")
            k += 1
        x = g.op("MaxPool", [x], f"vgg0_pool{b - 1}_fwd", kernel_shape=[2, 2], strides=[2, 2])
    x = g.op("Flatten", [x], "flatten_60")
    for d, fc in enumerate(("fc6_fc", "fc7_fc", "fc8")):
        x = g.op("Gemm", [x, g.init(f"vgg0_dense{d}_weight", transposed(values[f"_{fc}.w0"])),
                          g.init(f"vgg0_dense{d}_bias", values[f"_{fc}.wbias"])],
                 f"vgg0_dense{d}_fwd", transB=1)
        if d < 2:
            x = g.op("Relu", [x], f"vgg0_dense{d}_relu_fwd")
            x = g.op("Dropout", [x], f"vgg0_dropout{d}_fwd")
    outputs = ["vgg0_pool4_fwd", "vgg0_dense1_fwd", "vgg0_dense1_relu_fwd", "vgg0_dense2_fwd"]
    g.save(path, "data", [None, 3, 224, 224], outputs, opset=7, ir=3)
    return dict(zip(LAYERS, outputs))


def onnxruntime(path, batch, outputs, per_image=False):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    data = sess.get_inputs()[0].name
    runs = [sess.run(outputs, {data: x[None]}) for x in batch] if per_image else \
        [sess.run(outputs, {data: batch})]
    return {o: np.concatenate([r[i] for r in runs]) for i, o in enumerate(outputs)}


@needs_onnx
def test_onnx_zoo_vgg16_bn_matches_onnxruntime(tmp_path):
    """vgg16-bn-7.onnx: conv biases stay beside their batch norms (not folded, as a ResNet's
    are); a batch norm epsilon other than 1e-5 is folded into the variance exactly."""
    values = for_imagenet_rgb(vgg_weights("vgg16_bn"))
    src, model = tmp_path / "vgg16-bn-7.onnx", tmp_path / "model"
    names = gluon_vgg16_bn_onnx(src, values, first_eps=1e-3)
    recipe = modelinfo.IMAGENET_RGB
    batch = photo_batch(recipe, 2)
    want = onnxruntime(src, batch, list(names.values()))
    info = convert(src, model, "--from=onnx")
    assert (info["arch"], info["source"]["names"]) == ("vgg16_bn", "gluon")
    assert (info["source"]["top1"], info["source"]["top5"]) == (72.71, 91.21)
    assert modelinfo.read(str(model)).preprocessing == recipe
    got = converted(model, batch)
    same(got, want, names.items())
    assert rel_err(got["output"], softmax(want[names["fc8"]])) <= 1e-4
    assert 0.05 < (got["fc7"] > 0).mean() < 0.95  # alive: the comparison means something


def caffe2_vgg19_onnx(path, convs, fcs):
    """vgg19-caffe2: caffe2's export of the Caffe VGG-19 (names `<layer>_w_0` / `_b_0`, input
    `data_0` of batch 1, pool5 reshaped to (1, 25088) by an int64 initializer `OC2_DUMMY_1`,
    Gemm with (out, in) weights, softmax `prob_1`)."""
    g, x = Graph(), "data_0"
    names = iter(units(19))
    for b, count in enumerate(BLOCKS[19], 1):
        for _ in range(count):
            n = next(names)
            w, bias = convs[n]
            x = g.op("Conv", [x, g.init(f"{n}_w_0", w), g.init(f"{n}_b_0", bias)], f"{n}_1",
                     kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
            x = g.op("Relu", [x], f"{n}_2")
        x = g.op("MaxPool", [x], f"pool{b}_1", kernel_shape=[2, 2], strides=[2, 2])
    x = g.op("Reshape", [x, g.init("OC2_DUMMY_1", [1, 25088], np.int64)], "OC2_DUMMY_0")
    for fc in ("fc6", "fc7", "fc8"):
        x = g.op("Gemm", [x, g.init(f"{fc}_w_0", fcs[fc][0]), g.init(f"{fc}_b_0", fcs[fc][1])],
                 f"{fc}_1", transB=1)
        if fc != "fc8":
            x = g.op("Relu", [x], f"{fc}_2")
            x = g.op("Dropout", [x], f"{fc}_3")
    g.op("Softmax", [x], "prob_1")
    g.save(path, "data_0", [1, 3, 224, 224], ["pool5_1", "fc7_1", "fc7_2", "fc8_1", "prob_1"],
           opset=9, ir=4)
    return dict(zip(LAYERS + ("output",), ("pool5_1", "fc7_1", "fc7_2", "fc8_1", "prob_1")))


def caffe_arrays(values, depth):
    """v1 `values` as Caffe holds them: {conv: (W, b)}, {fc: (W (out, in), b)}."""
    convs = {u: (values[f"_{u}_conv.w0"], values[f"_{u}_conv.wbias"]) for u in units(depth)}
    fcs = {fc: (transposed(values[f"_{key}.w0"]), values[f"_{key}.wbias"])
           for fc, key in (("fc6", "fc6_fc"), ("fc7", "fc7_fc"), ("fc8", "fc8"))}
    return convs, fcs


@needs_onnx
def test_onnx_caffe2_vgg19_matches_onnxruntime(tmp_path):
    """vgg19-caffe2: Caffe's names and BGR weights; its softmax is the model's output."""
    convs, fcs = caffe_arrays(vgg_weights("vgg19"), 19)
    src, model = tmp_path / "vgg19-caffe2-9.onnx", tmp_path / "model"
    names = caffe2_vgg19_onnx(src, convs, fcs)
    batch = photo_batch(V1, 1)
    want = onnxruntime(src, batch, list(names.values()), per_image=True)
    info = convert(src, model, "--from=onnx")
    assert (info["arch"], info["source"]["names"]) == ("vgg19", "caffe2")
    recipe = modelinfo.read(str(model)).preprocessing
    assert recipe == V1  # Caffe's BGR minus the mean pixel: what onnxruntime was given
    same(converted(model, batch), want, names.items())


@needs_onnx
@pytest.mark.parametrize("ops", [("QLinearConv", "QLinearMatMul"),
                                 ("QuantizeLinear", "DequantizeLinear", "Conv")])
def test_quantized_onnx_zoo_files_are_refused_pointing_at_int8(tmp_path, ops):
    """vgg16-12-int8 (QOperator) and vgg16-12-qdq (QDQ pairs): int8 weights are not the
    network's; the line names the fp32 file and --precision=int8."""
    g, x = Graph(), "data"
    g.init("vgg0_conv0_weight_quantized", np.ones((64, 3, 3, 3)), np.int8)
    g.init("vgg0_conv0_weight_scale", [0.01])
    g.init("vgg0_conv0_weight_zero_point", [0], np.uint8)
    for i, kind in enumerate(ops):
        x = g.op(kind, [x], f"n{i}")
    src = tmp_path / "vgg16-12-int8.onnx"
    g.save(src, "data", [1, 3, 224, 224], [x], opset=12, ir=7)
    r = run_cli("--job=convert", "--from=onnx", f"--input={src}", f"--model={tmp_path / 'm'}")
    line = r.stderr.strip()
    assert r.returncode != 0 and "\n" not in line, r.stderr
    for word in (str(src), ops[0], "vgg16-12.onnx", "--precision=int8"):
        assert word in line, (word, line)
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------ MXNet .params

def test_gluon_structural_vgg16_params(tmp_path):
    """Gluon's save_parameters names (`features.N`, `output`), Dense weights (out, in)."""
    values = for_imagenet_rgb(vgg_weights("vgg16"))
    convs, fcs = caffe_arrays(values, 16)
    state = {}
    for i, u in zip(GLUON16_CONVS, units(16)):
        state[f"features.{i}.weight"], state[f"features.{i}.bias"] = convs[u]
    for prefix, fc in zip([f"features.{i}" for i in GLUON16_FC] + ["output"], fcs.values()):
        state[f"{prefix}.weight"], state[f"{prefix}.bias"] = fc
    src, model = tmp_path / "vgg16-e660d456.params", tmp_path / "model"
    write_params(src, state)
    info = convert(src, model, "--from=mxnet")
    assert (info["arch"], info["source"]["names"]) == ("vgg16", "gluon structural")
    assert (info["source"]["top1"], info["source"]["top5"]) == (73.23, 91.32)
    recipe = modelinfo.read(str(model)).preprocessing
    assert recipe == modelinfo.IMAGENET_RGB
    batch = photo_batch(recipe, 1)
    want = vgg_reference(batch, [(state[f"features.{i}.weight"], state[f"features.{i}.bias"])
                                 for i in GLUON16_CONVS],
                         [(state[f"{p}.weight"], state[f"{p}.bias"]) for p in
                          ("features.31", "features.33", "output")], 16)
    got = converted(model, batch)
    same(got, want, [(n, n) for n in LAYERS])
    assert rel_err(got["output"], softmax(want["fc8"])) <= 1e-4


def test_gluon_prefixed_vgg_keeps_conv_biases(tmp_path):
    """Gluon's creation-order names (`vgg0_conv0_bias` before `vgg0_batchnorm0_*`, or the
    same without the prefix): the conv bias is the VGG conv's own parameter, read as is."""
    from resnet.importers import IMPORTERS

    rng = np.random.default_rng(0)
    arrays = {"conv0_weight": rng.normal(size=(4, 3, 3, 3)), "conv0_bias": rng.normal(size=4),
              **{f"batchnorm0_{leaf}": rng.uniform(0.5, 1, 4)
                 for leaf in ("gamma", "beta", "running_mean", "running_var")},
              "dense2_weight": rng.normal(size=(10, 4)), "dense2_bias": rng.normal(size=10)}
    for prefix in ("vgg0_", ""):
        path = tmp_path / f"{prefix}x.params"
        write_params(path, {prefix + k: v for k, v in arrays.items()})
        state = IMPORTERS["mxnet"].read(str(path))
        for key, value in arrays.items():
            dotted = key.replace("_", ".", 1)  # conv0.bias, batchnorm0.running_mean
            np.testing.assert_array_equal(state[dotted], np.float32(value))


@pytest.fixture(scope="module")
def caffe16(tmp_path_factory):
    """VGG-16 as the VGG team's Caffe model holds it (conv1 reads BGR), and what that network
    computes on the first photo, BGR minus the mean pixel resized to 224."""
    convs, fcs = caffe_arrays(vgg_weights("vgg16"), 16)
    batch = photo_batch(V1, 1)
    want = vgg_reference(batch, [convs[u] for u in units(16)], list(fcs.values()), 16)
    return convs, fcs, want


def test_mxnet_caffe_converted_vgg16_params(tmp_path, caffe16):
    """MXNet's symbolic zoo `vgg16-0000.params` (arg:conv1_1_weight, ...; converted from Caffe
    with conv1's input channels reversed): on RGB input minus the RGB mean it computes what
    the Caffe network computes on the same photo in BGR."""
    convs, fcs, want = caffe16
    args = {}
    for u in units(16):
        w, b = convs[u]
        args[f"arg:{u}_weight"] = w[:, ::-1] if u == "conv1_1" else w  # the converter's swap
        args[f"arg:{u}_bias"] = b
    for fc, (w, b) in fcs.items():
        args[f"arg:{fc}_weight"], args[f"arg:{fc}_bias"] = w, b
    args["arg:prob_label"] = np.zeros(1)  # the softmax's label, set by some zoo scripts
    src, model = tmp_path / "vgg16-0000.params", tmp_path / "model"
    write_params(src, args)
    info = convert(src, model, "--from=mxnet")
    assert info["arch"] == "vgg16"
    assert info["source"]["names"] == "mxnet symbolic (converted from caffe)"
    recipe = modelinfo.read(str(model)).preprocessing
    assert (recipe.channel_order, recipe.mean, recipe.scale) == (
        "RGB", (123.68, 116.779, 103.939), 1.0)
    got = converted(model, photo_batch(recipe, 1))
    same(got, want, [(n, n) for n in LAYERS])
    assert rel_err(got["output"], softmax(want["fc8"])) <= 1e-4


# ------------------------------------------------------------------ Caffe .caffemodel

def _varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number, parts):
    """A length-delimited field as a list of byte pieces (written in turn, never joined)."""
    return [_varint(number << 3 | 2), _varint(sum(len(p) for p in parts))] + parts


def _v1_blob(a):
    """A BlobProto with the legacy num/channels/height/width dims (fields 1-4) and the
    values packed (field 5), as the VGG team's files hold them; fc weights are
    (1, 1, out, in), biases (1, 1, 1, n)."""
    from caffe_files import MESSAGES

    a = np.ascontiguousarray(a, "<f4")
    n, c, h, w = (1,) * (4 - a.ndim) + a.shape
    head = MESSAGES["BlobProto"](num=n, channels=c, height=h, width=w).SerializeToString()
    return [head] + _field(5, [memoryview(a).cast("B")])


def write_v1_caffemodel(path, name, convs, fcs):
    """NetParameter {name, layers: V1LayerParameter {name (4), type (5: CONVOLUTION 4,
    INNER_PRODUCT 14, RELU 18, POOLING 17, ...), blobs (6)}}; caffe_files.py's schema is the
    current `layer` format, so the V1 messages are put together here."""
    def layer(lname, kind, blobs=()):
        body = _field(4, [lname.encode()]) + [_varint(5 << 3), _varint(kind)]
        for b in blobs:
            body += _field(6, _v1_blob(b))
        return _field(2, body)

    with open(path, "wb") as f:
        def put(parts):
            for p in parts:
                f.write(p)

        put(_field(1, [name.encode()]))
        for u, (w, b) in convs.items():
            put(layer(u, 4, (w, b)) + layer(u.replace("conv", "relu"), 18))
            if u.endswith(("1_2", "2_2", "3_3", "4_3", "5_3")):
                put(layer(f"pool{u[4]}", 17))
        for fc, (w, b) in fcs.items():
            put(layer(fc, 14, (w, b)))
            if fc != "fc8":
                put(layer(fc.replace("fc", "relu"), 18) + layer(fc.replace("fc", "drop"), 6))
        put(layer("prob", 20))


def test_caffe_vgg16_caffemodel(tmp_path, caffe16):
    """VGG_ILSVRC_16_layers.caffemodel: BGR minus the mean pixel, as the VGG team says."""
    convs, fcs, want = caffe16
    src, model = tmp_path / "VGG_ILSVRC_16_layers.caffemodel", tmp_path / "model"
    write_v1_caffemodel(src, "VGG_ILSVRC_16_layers", convs, fcs)
    info = convert(src, model, "--from=caffe")
    assert (info["arch"], info["source"]["names"]) == ("vgg16", "caffe")
    recipe = modelinfo.read(str(model)).preprocessing
    assert recipe.origin == "model.json" and recipe == V1  # V1's values, said by model.json
    got = converted(model, photo_batch(recipe, 1))
    same(got, want, [(n, n) for n in LAYERS])
    assert rel_err(got["output"], softmax(want["fc8"])) <= 1e-4
