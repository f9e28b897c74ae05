"""Weights from the ecosystem in, deployment formats out.

paddle.vision models (seeded, BN statistics randomised so batch norm is really tested) are
saved with paddle.save, converted by the CLI and run by the CLI; their probabilities and
every intermediate layer must match paddle.vision's own forward. The .pth reader is proven on
files torch itself wrote (tests/data, made by make_torch_fixture.py); full torchvision, timm
and PaddleClas checkpoints are derived here from the same models and must convert to exactly
the same v1 files. No network, no torch needed.
"""
import collections
import csv
import io
import json
import os
import pickle
import zipfile

import cv2
import numpy as np
import paddle
import pytest
from conftest import EXAMPLES, run_cli
from reference import rel_err

from resnet.inputs import imaging
from resnet.modelio import modelinfo, params
from resnet.models.preprocessing import DEFAULT_BGR
from resnet.runtime import network
from resnet.errors import ResnetError
from resnet.models import build

TOL = 1e-4
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
IMAGES = ("cat.jpg", "rocket.jpg")
MEAN_RGB = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
STD_RGB = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)


# ------------------------------------------------------------------ paddle.vision models

def _paddle_vision(depth: int):
    """paddle.vision resnetN(pretrained=False), seeded, BN stats random, fc scaled so the
    softmax is far from uniform (random heads give logits of ~0.3)."""
    paddle.seed(depth)
    model = getattr(paddle.vision.models, f"resnet{depth}")(pretrained=False)
    rng = np.random.default_rng(depth)
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):
            c = layer._mean.shape[0]
            layer.weight.set_value(rng.uniform(0.2, 0.6, c).astype("float32"))
            layer.bias.set_value(rng.normal(0, 0.1, c).astype("float32"))
            layer._mean.set_value(rng.normal(0, 0.1, c).astype("float32"))
            layer._variance.set_value(rng.uniform(0.5, 1.5, c).astype("float32"))
    model.fc.weight.set_value(model.fc.weight.numpy() * 10)
    model.eval()
    return model


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """depth -> (model, .pdparams path, state as numpy, converted dir), made once per depth."""
    made = {}

    def get(depth):
        if depth not in made:
            d = tmp_path_factory.mktemp(f"pv{depth}")
            model = _paddle_vision(depth)
            path = str(d / f"resnet{depth}.pdparams")
            paddle.save(model.state_dict(), path)
            out = str(d / "converted")
            args = ["--job=convert", "--from=paddle", f"--input={path}", f"--model={out}"]
            if depth != 34:  # 34 and 50 have the same block counts: the depth is read off
                args.append(f"--layer_num={depth}")
            r = run_cli(*args)
            assert r.returncode == 0, r.stderr
            state = {k: v.numpy() for k, v in model.state_dict().items()}
            made[depth] = model, path, state, out
        return made[depth]

    return get


def _by_hand(name: str) -> np.ndarray:
    """paddle.vision's evaluation transform, written out: short side 256, centre crop 224,
    RGB, /255, mean/std (OpenCV area resize when shrinking, as the package resizes)."""
    bgr = cv2.imread(os.path.join(EXAMPLES, name))
    h, w = bgr.shape[:2]
    s = 256 / min(h, w)
    size = (int(round(w * s)), int(round(h * s)))
    img = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    H, W = img.shape[:2]
    top, left = int(round((H - 224) / 2)), int(round((W - 224) / 2))
    rgb = img[top:top + 224, left:left + 224, ::-1].transpose(2, 0, 1).astype(np.float32)
    return (rgb / 255.0 - MEAN_RGB) / STD_RGB


def _batch() -> np.ndarray:
    return np.stack([_by_hand(n) for n in IMAGES]).astype(np.float32)


def _probs_csv(path: str) -> np.ndarray:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    out = np.zeros((len(rows), 1000))
    for i, row in enumerate(rows):
        k = (len(row) - 1) // 3
        out[i, [int(v) for v in row[1:1 + k]]] = [float(v) for v in row[1 + 2 * k:]]
    return out


@pytest.fixture(scope="module")
def image_list(tmp_path_factory):
    path = tmp_path_factory.mktemp("list") / "images.list"
    path.write_text("".join(os.path.join(EXAMPLES, n) + "\n" for n in IMAGES))
    return str(path)


@pytest.mark.parametrize("depth", [18, 34, 50])  # 101/152: the same names, more blocks
def test_paddle_vision_predict_matches_its_own_forward(zoo, image_list, tmp_path, depth):
    model, _, _, converted = zoo(depth)
    info = json.load(open(os.path.join(converted, "model.json")))
    assert (info["layer_num"], info["variant"]) == (depth, "v1.5")
    assert info["preprocessing"]["channel_order"] == "RGB"
    engine = "inference" if depth == 50 else "dygraph"  # the compiled engine once, v1.5 too
    out = str(tmp_path / "p.csv")
    r = run_cli("--job=predict", f"--model={converted}", f"--data={image_list}", "--top_k=1000",
                f"--output_file={out}", f"--engine={engine}", "--use_gpu=0")
    assert r.returncode == 0, r.stderr
    with paddle.no_grad():
        want = paddle.nn.functional.softmax(model(paddle.to_tensor(_batch()))).numpy()
    got = _probs_csv(out)
    assert want.max() > 0.01  # far from uniform (0.001): a wrong layer would show
    assert rel_err(got, want) <= TOL, f"ResNet-{depth}: relative error {rel_err(got, want):.3g}"


# ------------------------------------------------------------------ every layer, v1.5

def _hooked_layers(model, basic: bool) -> dict:
    """paddle.vision sublayer -> (v1 layer name, relu applied after it in the block)."""
    names = {"conv1": ("conv1_conv", False), "bn1": ("conv1_bn", True),
             "maxpool": ("pool1", False), "avgpool": ("avgpool", False), "fc": ("output", False)}
    for s in range(1, 5):
        for b, _ in enumerate(getattr(model, f"layer{s}")):
            p, q = f"layer{s}.{b}", f"res{s + 1}_{b + 1}"
            names[p] = (f"{q}_addto", False)
            names[f"{p}.downsample.0"] = (f"{q}_branch1_conv", False)
            names[f"{p}.downsample.1"] = (f"{q}_branch1_bn", False)
            branches = ("2a", "2b") if basic else ("2a", "2b", "2c")
            for k, br in enumerate(branches, 1):
                names[f"{p}.conv{k}"] = (f"{q}_branch{br}_conv", False)
                names[f"{p}.bn{k}"] = (f"{q}_branch{br}_bn", k < len(branches))
    return names


@pytest.mark.parametrize("depth", [18, 50])
def test_every_layer_of_v15_matches_paddle_vision(zoo, depth):
    model, _, _, converted = zoo(depth)
    spec = build(depth, "v1.5")
    wanted, captured, hooks = _hooked_layers(model, depth in (18, 34)), {}, []
    for name, layer in model.named_sublayers():
        if name in wanted:
            v1, relu = wanted[name]

            def hook(_, __, out, v1=v1, relu=relu):
                y = out.numpy()
                captured[v1] = np.maximum(y, 0) if relu else y
            hooks.append(layer.register_forward_post_hook(hook))
    batch = _batch()
    with paddle.no_grad():
        logits = model(paddle.to_tensor(batch))
    for h in hooks:
        h.remove()
    captured["output"] = paddle.nn.functional.softmax(logits).numpy()
    assert set(captured) == set(spec.names) - {"input"}
    got = network.load(converted, depth).run(batch, spec.names)  # variant from model.json
    errors = {n: rel_err(got[n], captured[n]) for n in captured}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOL, f"{worst}: relative error {errors[worst]:.3g}"
    assert got["pool1"].shape == (2, 64, 56, 56)


# ------------------------------------------------------------------ torch .pth, no torch

def test_pth_reader_on_files_torch_wrote():
    """tests/data/*.pth come from torch.save itself (zip, and legacy with fp16 and bf16)."""
    from resnet.importers.torch_pth import read_torch

    expected = np.load(os.path.join(DATA, "torch_fixture.npz"))
    for fname, prefix in (("torch_fixture.pth", "zip/"), ("torch_fixture_legacy.pth", "legacy/")):
        got = read_torch(os.path.join(DATA, fname))
        keys = sorted(k[len(prefix):] for k in expected.files if k.startswith(prefix))
        assert sorted(got) == keys
        for key in keys:
            want = expected[prefix + key]
            assert got[key].shape == want.shape, key
            assert got[key].dtype.kind == want.dtype.kind, key
            np.testing.assert_array_equal(got[key].astype(want.dtype), want, err_msg=key)
    assert got["bn1.num_batches_tracked"].dtype == np.int64


class _Global:
    """A global pickled by name (GLOBAL module\\nname), so torch's pickles are written
    without torch."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):
        raise TypeError("a placeholder")


class _Pickler(pickle._Pickler):  # the pure-Python pickler accepts a dispatch entry per type
    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[_Global] = lambda self, g: self.write(
        pickle.GLOBAL + f"{g.module}\n{g.name}\n".encode())

    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _StorageRef) else None


class _StorageRef:
    def __init__(self, pid):
        self.pid = pid


class _TensorRecord:
    def __init__(self, storage, shape, strides):
        self.args = (storage, 0, shape, strides, False, collections.OrderedDict())

    def __reduce__(self):
        return _Global("torch._utils", "_rebuild_tensor_v2"), self.args


def write_pth(path, state):
    """torch.save's zip layout (archive/data.pkl, archive/data/N, protocol 2), without torch."""
    kinds = {"float32": "FloatStorage", "int64": "LongStorage", "float16": "HalfStorage"}
    records, blobs = collections.OrderedDict(), {}
    for i, (key, value) in enumerate(state.items()):
        value = np.ascontiguousarray(value)
        pid = ("storage", _Global("torch", kinds[value.dtype.name]), str(i), "cpu", value.size)
        records[key] = _TensorRecord(_StorageRef(pid), value.shape,
                                     tuple(s // value.itemsize for s in value.strides))
        blobs[str(i)] = value.astype(value.dtype.newbyteorder("<")).tobytes()
    buf = io.BytesIO()
    _Pickler(buf, protocol=2).dump(records)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for key, blob in blobs.items():
            z.writestr(f"archive/data/{key}", blob)
        z.writestr("archive/version", "3\n")


def torchvision_state(pd_state: dict) -> dict:
    """The same weights under torchvision's names and layouts (timm uses the same names)."""
    out = {}
    for key, value in pd_state.items():
        key = key.replace("._mean", ".running_mean").replace("._variance", ".running_var")
        out[key] = value.T.copy() if key == "fc.weight" else value
        if key.endswith(".running_var"):
            out[key[:-len("running_var")] + "num_batches_tracked"] = np.array(7, np.int64)
    return out


def paddleclas_state(pd_state: dict, blocks) -> dict:
    """PaddleClas ResNet50's names: stem.0.{conv,bn}, blocks.G.conv0..2 / short (G global)."""
    starts = np.cumsum([0, *blocks])
    out = {}
    for key, value in pd_state.items():
        parts = key.split(".")
        if parts[0] in ("conv1", "bn1"):
            key = f"stem.0.{'conv' if parts[0] == 'conv1' else 'bn'}.{parts[-1]}"
        elif parts[0].startswith("layer"):
            g = starts[int(parts[0][5:]) - 1] + int(parts[1])
            if parts[2] == "downsample":
                mod = "short." + ("conv" if parts[3] == "0" else "bn")
            else:
                kind = "conv" if parts[2][:-1] == "conv" else "bn"
                mod = f"conv{int(parts[2][-1]) - 1}.{kind}"
            key = f"blocks.{g}.{mod}.{parts[-1]}"
        out[key] = value
    return out


def _same_model(dir_a, dir_b, depth):
    spec = build(depth, "v1.5")
    a, b = params.load_model(dir_a, spec), params.load_model(dir_b, spec)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    ja, jb = (json.load(open(os.path.join(d, "model.json"))) for d in (dir_a, dir_b))
    ja.pop("source"), jb.pop("source")
    assert ja == jb


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_pth_converts_like_the_pdparams(zoo, tmp_path, depth):
    _, _, state, converted = zoo(depth)
    pth = str(tmp_path / f"resnet{depth}.pth")
    write_pth(pth, torchvision_state(state))
    out = str(tmp_path / "out")
    r = run_cli("--job=convert", "--from=torchvision", f"--input={pth}",
                f"--layer_num={depth}", f"--model={out}")
    assert r.returncode == 0, r.stderr
    assert "torchvision names" in r.stderr
    _same_model(out, converted, depth)


def test_pth_saved_by_real_torch_when_installed(zoo, tmp_path):
    torch = pytest.importorskip("torch", reason="torch not installed (optional: the committed "
                                "tests/data fixtures already prove the reader on torch's files)")
    _, _, state, converted = zoo(18)
    pth = str(tmp_path / "resnet18.pth")
    torch.save(collections.OrderedDict(
        (k, torch.from_numpy(np.array(v))) for k, v in torchvision_state(state).items()), pth)
    out = str(tmp_path / "out")
    r = run_cli("--job=convert", "--from=torchvision", f"--input={pth}", f"--model={out}")
    assert r.returncode == 0, r.stderr
    _same_model(out, converted, 18)


@pytest.mark.parametrize("names", ["torchvision", "paddle.vision"])
def test_safetensors_round_trip(zoo, tmp_path, names):
    pytest.importorskip("safetensors", reason="safetensors not installed: pip install '.[convert]'")
    from safetensors.numpy import save_file

    _, _, state, converted = zoo(18)
    tensors = torchvision_state(state) if names == "torchvision" else dict(state)
    path = str(tmp_path / "model.safetensors")
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, path)
    out = str(tmp_path / "out")
    r = run_cli("--job=convert", "--from=safetensors", f"--input={path}", "--layer_num=18",
                f"--model={out}")
    assert r.returncode == 0, r.stderr
    assert f"{names} names" in r.stderr
    _same_model(out, converted, 18)


def test_paddleclas_names(zoo, tmp_path):
    _, _, state, converted = zoo(50)
    path = str(tmp_path / "ResNet50_pretrained.pdparams")
    paddle.save({k: paddle.to_tensor(v) for k, v in
                 paddleclas_state(state, (3, 4, 6, 3)).items()}, path)
    out = str(tmp_path / "out")
    r = run_cli("--job=convert", "--from=paddle", f"--input={path}", "--layer_num=50",
                f"--model={out}")
    assert r.returncode == 0, r.stderr
    assert "PaddleClas names" in r.stderr
    _same_model(out, converted, 50)


# ------------------------------------------------------------------ export

LAYERS = ["res3_1_branch1_bn", "pool1", "output"]


def test_export_onnx_matches_executor(zoo, tmp_path):
    for module in ("onnx", "onnxruntime", "paddle2onnx"):
        pytest.importorskip(module, reason=f"{module} not installed: pip install '.[export]'")
    import onnxruntime as ort

    _, _, _, converted = zoo(18)
    path = str(tmp_path / "resnet18.onnx")
    r = run_cli("--job=export", "--to=onnx", f"--model={converted}",
                f"--output_layer={','.join(LAYERS)}", f"--output={path}")
    assert r.returncode == 0, r.stderr
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == LAYERS
    batch = _batch()
    got = dict(zip(LAYERS, sess.run(None, {"image": batch})))
    want = network.load(converted, 18).run(batch, LAYERS)
    for name in LAYERS:
        assert rel_err(got[name], want[name]) <= TOL, name
    side = json.load(open(str(tmp_path / "resnet18.resnet.json")))
    assert [o["name"] for o in side["outputs"]] == LAYERS
    assert side["preprocessing"]["channel_order"] == "RGB"


def test_export_tidy_drops_dead_nodes_and_unused_initializers():
    """What paddle2onnx leaves behind goes; what an output reads, directly or from inside an
    If branch, stays, in order."""
    onnx = pytest.importorskip("onnx", reason="onnx not installed: pip install '.[export]'")
    from onnx import TensorProto, helper, numpy_helper

    from resnet.runtime.export import _tidy

    def tensor(name):
        return numpy_helper.from_array(np.ones(2, np.float32), name)

    branch = helper.make_graph([helper.make_node("Add", ["x", "w_branch"], ["b"])], "branch",
                               [], [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])])
    nodes = [helper.make_node("Add", ["x", "w"], ["y"]),
             helper.make_node("Mul", ["y", "w_dead"], ["dead"]),  # nothing reads it
             helper.make_node("If", ["cond"], ["z"], then_branch=branch, else_branch=branch),
             helper.make_node("Add", ["y", "z"], ["out"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2])
                     for n in ("x", "cond", "w_unused")],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])],
        [tensor(n) for n in ("w", "w_dead", "w_branch", "w_unused", "cond")])
    model = _tidy(helper.make_model(graph))
    assert [n.op_type for n in model.graph.node] == ["Add", "If", "Add"]
    assert [t.name for t in model.graph.initializer] == ["w", "w_branch", "cond"]
    assert [i.name for i in model.graph.input] == ["x", "cond"]
    onnx.checker.check_model(model)


def test_export_paddle_inference_matches_executor(zoo, tmp_path):
    from paddle import inference

    _, _, _, converted = zoo(18)
    prefix = str(tmp_path / "infer" / "resnet18")
    r = run_cli("--job=export", "--to=paddle_inference", f"--model={converted}",
                f"--output_layer={','.join(LAYERS)}", f"--output={prefix}")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path / "infer")) == [
        "resnet18.pdiparams", "resnet18.pdmodel", "resnet18.resnet.json"]
    config = inference.Config(prefix + ".pdmodel", prefix + ".pdiparams")
    config.disable_gpu()
    predictor = inference.create_predictor(config)
    batch = _batch()
    handle = predictor.get_input_handle(predictor.get_input_names()[0])
    handle.reshape(batch.shape)
    handle.copy_from_cpu(batch)
    predictor.run()
    got = [predictor.get_output_handle(n).copy_to_cpu() for n in predictor.get_output_names()]
    want = network.load(converted, 18).run(batch, LAYERS)
    for name, value in zip(LAYERS, got):
        assert rel_err(value, want[name]) <= TOL, name


def test_export_needs_its_flags(zoo):
    _, _, _, converted = zoo(18)
    r = run_cli("--job=export", f"--model={converted}", "--output=x.onnx")
    assert r.returncode == 1 and "needs --to" in r.stderr
    r = run_cli("--job=export", "--to=onnx", f"--model={converted}")
    assert r.returncode == 1 and "needs --output" in r.stderr


# ------------------------------------------------------------------ refusals

def _evil_pickle(marker: str) -> bytes:
    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    return pickle.dumps({"conv1.weight": Evil()}, protocol=2)


def _malformed(kind, zoo, tmp_path):
    _, pdparams, state, _ = zoo(18)
    marker = str(tmp_path / "PWNED")
    if kind == "wrong depth":
        return "paddle", pdparams, ["--layer_num=50"], "it fits ResNet-18"
    if kind == "truncated pdparams":
        path = tmp_path / "cut.pdparams"
        path.write_bytes(open(pdparams, "rb").read()[:100000])
        return "paddle", str(path), [], "not a valid pickle"
    if kind == "truncated pth":
        full = tmp_path / "full.pth"
        write_pth(str(full), torchvision_state(state))
        path = tmp_path / "cut.pth"
        path.write_bytes(full.read_bytes()[:-200000])
        return "torchvision", str(path), [], "not a readable PyTorch checkpoint"
    if kind == "truncated safetensors":
        pytest.importorskip("safetensors",
                            reason="safetensors not installed: pip install '.[convert]'")
        from safetensors.numpy import save_file

        full = str(tmp_path / "full.safetensors")
        save_file({k: np.ascontiguousarray(v) for k, v in torchvision_state(state).items()}, full)
        path = tmp_path / "cut.safetensors"
        path.write_bytes(open(full, "rb").read()[:-1000])
        return "safetensors", str(path), [], "not a readable safetensors file"
    if kind == "forbidden global pdparams":
        path = tmp_path / "evil.pdparams"
        path.write_bytes(_evil_pickle(marker))
        return "paddle", str(path), [], "refused global"
    if kind == "forbidden global pth":
        path = tmp_path / "evil.pth"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", _evil_pickle(marker))
        return "torchvision", str(path), [], "refused global"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["wrong depth", "truncated pdparams", "truncated pth",
                                  "truncated safetensors", "forbidden global pdparams",
                                  "forbidden global pth"])
def test_malformed_input_is_one_line_and_leaves_nothing(zoo, tmp_path, kind):
    fmt, path, extra, message = _malformed(kind, zoo, tmp_path)
    out = tmp_path / "out" / "model"
    r = run_cli("--job=convert", f"--from={fmt}", f"--input={path}", f"--model={out}", *extra)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("resnet: error: "), r.stderr
    assert message in lines[0]
    assert not out.exists()
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []
    assert not (tmp_path / "PWNED").exists()


def test_existing_model_dir_needs_overwrite(zoo, tmp_path):
    _, pdparams, _, _ = zoo(18)
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = run_cli("--job=convert", "--from=paddle", f"--input={pdparams}", f"--model={out}")
    assert r.returncode == 1 and "--overwrite" in r.stderr
    assert os.listdir(out) == ["keep.txt"]
    r = run_cli("--job=convert", "--from=paddle", f"--input={pdparams}", f"--model={out}",
                "--overwrite")
    assert r.returncode == 0, r.stderr
    assert "keep.txt" not in os.listdir(out) and "model.json" in os.listdir(out)
    assert sorted(os.listdir(tmp_path)) == ["model"]


# ------------------------------------------------------------------ spec and model.json

def test_variants_and_basic_blocks_in_the_spec():
    v1, v15 = build(50), build(50, "v1.5")
    assert v1.names == v15.names and v1.param_files() == v15.param_files()
    strides = [[s[f"res3_1_branch2{b}_conv"].attrs["stride"] for b in "ab"] for s in (v1, v15)]
    assert strides == [[2, 1], [1, 2]]  # Caffe: on the first 1x1; v1.5: on the 3x3
    assert (v1["pool1"].attrs["pad"], v1["pool1"].attrs["ceil"]) == (0, True)
    assert (v15["pool1"].attrs["pad"], v15["pool1"].attrs["ceil"]) == (1, False)
    r18 = build(18, "v1.5")
    assert "res2_1_branch1_conv" not in r18 and "res3_1_branch1_conv" in r18
    assert "res2_1_branch2c_conv" not in r18
    assert r18["res2_1_branch2b_bn"].attrs["act"] is None
    assert r18["output"].attrs["in"] == 512 and len(build(34)) > len(r18)
    assert r18.default_features() == ["res5_2_branch2b_conv", "res5_2_branch2b_bn"]
    for bad, words in (((20,), r"50, 101, 152 \(the v1 zoo's depths\) or 18, 34"),
                       ((50, "v3"), "v1, v1.5, v1-pad1, v2")):
        with pytest.raises(ResnetError, match=words):
            build(*bad)


@pytest.mark.slow
def test_model_json_drives_and_flags_win(zoo, image_list, tmp_path):
    from argparse import Namespace

    _, _, _, converted = zoo(18)
    spec, info = modelinfo.resolve(Namespace(model=converted, layer_num=None, variant=None))
    assert (spec.layer_num, spec.variant, info.preprocessing) == (18, "v1.5",
                                                                  modelinfo.IMAGENET_RGB)
    spec, _ = modelinfo.resolve(Namespace(model=converted, layer_num=None, variant="v1"))
    assert spec.variant == "v1"
    spec, info = modelinfo.resolve(Namespace(model=str(tmp_path), layer_num=None, variant=None))
    assert (spec.layer_num, spec.variant, info) == (50, "v1", None)
    v1 = modelinfo.preprocessing(None, None)  # v1's preprocessing: one value of the Recipe
    assert (v1.origin, v1.channel_order, v1.scale, v1.resize_short_side, v1.crop) == \
        ("v1", "BGR", 1.0, None, 224) and v1.mean == DEFAULT_BGR
    # an explicit --variant wins in both engines: the compiled one is built for it too
    outs = {}
    for eng in ("inference", "dygraph"):
        csv_path = tmp_path / f"{eng}.csv"
        r = run_cli("--job=predict", f"--model={converted}", f"--data={image_list}",
                    "--variant=v1", f"--engine={eng}", "--use_gpu=0", f"--output_file={csv_path}")
        assert r.returncode == 0 and "overrides model.json's v1.5" in r.stderr, r.stderr
        outs[eng] = [line.split(",")[-5:] for line in csv_path.read_text().splitlines()[1:]]
    r = run_cli("--job=predict", f"--model={converted}", f"--data={image_list}", "--use_gpu=0",
                f"--output_file={tmp_path / 'own.csv'}")
    own = [line.split(",")[-5:] for line in (tmp_path / "own.csv").read_text().splitlines()[1:]]
    got, want = np.array(outs["inference"], float), np.array(outs["dygraph"], float)
    np.testing.assert_allclose(got, want, rtol=1e-4)
    assert not np.allclose(np.array(own, float), want)  # v1 really differs from v1.5
    # a typo in the recipe is an error, not a silent default
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.json").write_text(json.dumps({"layer_num": 18, "preprocessing": {"sclae": 1}}))
    with pytest.raises(ResnetError, match="unknown preprocessing key"):
        modelinfo.read(str(bad))


def test_recipe_preprocessing_and_mean_override(tmp_path):
    path = os.path.join(EXAMPLES, "cat.jpg")
    got = imaging.preprocess(path, modelinfo.IMAGENET_RGB)
    np.testing.assert_allclose(got[0], _by_hand("cat.jpg"), atol=1e-5)
    # a v1-shaped recipe gives exactly v1's single crop
    v1 = imaging.preprocess(path, modelinfo.Recipe())
    np.testing.assert_array_equal(v1, imaging.preprocess(path, imaging_mean()))
    # --mean (BGR, pixel units) replaces the recipe's mean in its own order and scale
    bgr = np.array([10.0, 20.0, 30.0], np.float32)
    recipe = modelinfo.IMAGENET_RGB.with_v1_mean(bgr.reshape(3, 1, 1))
    want = (_by_hand("cat.jpg") * STD_RGB + MEAN_RGB - bgr[::-1].reshape(3, 1, 1) / 255) / STD_RGB
    np.testing.assert_allclose(imaging.preprocess(path, recipe)[0], want, atol=1e-5)
    ten = imaging.preprocess(path, modelinfo.IMAGENET_RGB, multi_crop=True)
    assert ten.shape == (10, 3, 224, 224)
    np.testing.assert_array_equal(ten[5], ten[0][:, :, ::-1])


def imaging_mean():
    from resnet.models.preprocessing import V1

    return V1
