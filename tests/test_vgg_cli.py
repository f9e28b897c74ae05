"""VGG through the whole product: detected from its files, extracted by the compiled engine
(checked against the dygraph reference), pooled in the graph, 10-crop, predicted, listed,
drawn. One VGG-16-BN folder (0.5 GB) serves the module.
"""
import csv
import json
import os

import numpy as np
import pytest
from conftest import EXAMPLES, run_cli
from reference import rel_err
from vgg_weights import vgg_weights

import resnet
from resnet.inputs import imaging
from resnet.modelio import params
from resnet.models import build_arch
from resnet.models.preprocessing import V1

# one worker: the VGG weights (0.5 GB each) are drawn once per process and shared
pytestmark = pytest.mark.xdist_group("vgg")

PHOTOS = ("cat.jpg", "rocket.jpg")


@pytest.fixture(scope="module")
def vgg_dir(tmp_path_factory):
    """VGG-16-BN in the v1 file layout, no model.json: the files alone say what it is."""
    d = tmp_path_factory.mktemp("vgg16_bn")
    params.save_model(str(d), build_arch("vgg16_bn"), vgg_weights("vgg16_bn"))
    yield str(d)
    for name in os.listdir(d):
        os.remove(os.path.join(d, name))


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    path = tmp_path_factory.mktemp("photos") / "list.txt"
    path.write_text("".join(os.path.join(EXAMPLES, n) + "\n" for n in PHOTOS))
    return str(path)


@pytest.fixture(scope="module")
def reference(vgg_dir):
    """The dygraph executor's outputs for every photo at LAYERS, single crop, computed in this
    process once."""
    net = resnet.load(vgg_dir)
    assert net.spec.arch == "vgg16_bn"  # told from its parameter files alone
    single = [net.run(imaging.preprocess(os.path.join(EXAMPLES, n), V1), LAYERS)
              for n in PHOTOS]
    return {k: np.concatenate([r[k] for r in single]) for k in LAYERS}


@pytest.fixture(scope="module")
def onnx_export(vgg_dir, tmp_path_factory):
    """An ONNX Runtime session on `--job=export --to=onnx` of the model (fc7, output)."""
    for module in ("onnx", "onnxruntime", "paddle2onnx"):
        pytest.importorskip(module, reason=f"{module} not installed: pip install '.[export]'")
    import onnxruntime as ort

    path = str(tmp_path_factory.mktemp("vgg_onnx") / "vgg.onnx")
    r = run_cli("--job=export", "--to=onnx", f"--model={vgg_dir}", "--output_layer=fc7,output",
                f"--output={path}")
    assert r.returncode == 0, r.stderr
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return lambda batch: dict(zip(("fc7", "output"), sess.run(None, {"image": batch})))


LAYERS = ["conv5_3", "pool5", "fc7", "output"]


def test_compiled_engine_extracts_vgg_pooled_and_checked(vgg_dir, photos, reference,
                                                         tmp_path):
    out = tmp_path / "out"
    r = run_cli("--job=extract", f"--model={vgg_dir}", f"--data={photos}",
                f"--output_dir={out}", f"--output_layer={','.join(LAYERS)}", "--pool=avg",
                "--check", "--use_gpu=0")
    assert r.returncode == 0, r.stderr
    assert "running VGG-16 with batch norm on CPU" in r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["arch"] == "vgg16_bn"
    assert manifest["layers"] == {"conv5_3": [512], "pool5": [512], "fc7": [4096],
                                  "output": [1000]}
    want = reference
    with resnet.load_features(str(out)) as got:
        for name in LAYERS:
            w = want[name].mean(axis=(2, 3)) if want[name].ndim == 4 else want[name]
            assert rel_err(np.asarray(got[name]), w) <= 1e-4, name


def test_vgg_ten_crops_and_predict(vgg_dir, photos, reference, onnx_export, tmp_path):
    """Ten crops averaged, against ONNX Runtime running the same ten crops through the export
    (itself checked against the dygraph reference below; ten VGG-16 crops through the
    single-threaded dygraph network took 15 s of this module)."""
    one = tmp_path / "one.txt"
    one.write_text(os.path.join(EXAMPLES, PHOTOS[0]) + "\n")
    out = tmp_path / "ten"
    # the compiled-engine test's layers and pooling: its cached engine runs the ten crops
    r = run_cli("--job=extract", f"--model={vgg_dir}", f"--data={one}",
                f"--output_dir={out}", "--multi_crop=1", f"--output_layer={','.join(LAYERS)}",
                "--pool=avg", "--use_gpu=0", "--format=text")
    assert r.returncode == 0, r.stderr
    crops = imaging.preprocess(os.path.join(EXAMPLES, PHOTOS[0]), V1, True)
    assert crops.shape == (10, 3, 224, 224)
    want = onnx_export(crops)["fc7"].mean(axis=0, keepdims=True)
    with resnet.load_features(str(out)) as got:
        assert rel_err(np.asarray(got["fc7"]), want) <= 1e-4
    csv_path = tmp_path / "pred.csv"
    r = run_cli("--job=predict", f"--model={vgg_dir}", f"--data={photos}",
                "--engine=dygraph", "--use_gpu=0", f"--output_file={csv_path}", "--top_k=1")
    assert r.returncode == 0, r.stderr
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert [int(row[1]) for row in rows] == reference["output"].argmax(1).tolist()


def test_layers_diagram_and_errors_by_arch(tmp_path):
    r = run_cli("--job=layers", "--arch=vgg19")
    assert r.returncode == 0, r.stderr
    assert "VGG-19: 44 layers" in r.stdout and "conv5_4_conv" in r.stdout
    assert "143,667,240" in r.stdout  # learnable parameters, as torchvision counts them
    r = run_cli("--job=diagram", "--arch=vgg16", "--output_layer=fc7",
                f"--output={tmp_path / 'vgg.dot'}")
    assert r.returncode == 0, r.stderr
    dot = (tmp_path / "vgg.dot").read_text()
    assert all(f"cluster_block{b}" in dot for b in range(1, 6)) and "digraph vgg16" in dot
    r = run_cli("--job=layers", "--arch=vgg61")
    assert r.returncode == 1 and "unknown architecture 'vgg61'" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("--job=layers", "--arch=vgg16", "--layer_num=50")
    assert r.returncode == 1 and "--arch names the whole network" in r.stderr
    r = run_cli("--job=demo_model", "--arch=vgg16", "--layer_num=50",
                f"--model={tmp_path / 'demo'}")
    assert r.returncode == 1 and "--arch names the whole network" in r.stderr
    assert not (tmp_path / "demo").exists()
    r = run_cli("--job=models")
    assert r.returncode == 0 and "vgg19_bn" in r.stdout and "resnet50_v1 " in r.stdout


def test_check_names_the_architecture(vgg_dir):
    r = run_cli("--job=check", f"--model={vgg_dir}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"ok: {vgg_dir} is a valid VGG-16 with batch norm (vgg16_bn) "
                               "model (84 parameter files, 138,374,440 values)")


def test_vgg_shards_merge_and_onnx_export(vgg_dir, photos, reference, onnx_export, tmp_path):
    """The architecture-neutral paths with a VGG: two shards merged equal the dygraph
    reference (and the merged manifest names the architecture); the ONNX export run in ONNX
    Runtime equals it too."""
    out = tmp_path / "sharded"
    for i in (1, 2):  # through the Python API: the same job, without two interpreter starts;
        # the compiled-engine test's layers and pooling, so the cached engine serves both
        summary = resnet.extract(vgg_dir, str(photos), LAYERS, str(out), shard=f"{i}/2",
                                 pool="avg", use_gpu=0)
        assert summary.exit_code == 0 and summary.done == 1, summary  # one photo each
    r = run_cli("--job=merge", f"--output_dir={out}")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "manifest.json").read_text())["arch"] == "vgg16_bn"
    with resnet.load_features(str(out)) as got:
        assert [os.path.basename(p) for p in got.images] == list(PHOTOS)
        for name in LAYERS:
            w = reference[name]
            w = w.mean(axis=(2, 3)) if w.ndim == 4 else w
            assert rel_err(np.asarray(got[name]), w) <= 1e-4, name
    batch = np.concatenate([imaging.preprocess(os.path.join(EXAMPLES, n), V1) for n in PHOTOS])
    got = onnx_export(batch)
    for name in ("fc7", "output"):
        assert rel_err(got[name], reference[name]) <= 1e-4, name
