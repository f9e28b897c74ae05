"""The compiled Paddle Inference engine: equal to the dygraph reference, cached, guarded."""
import os

import numpy as np
import pytest
from conftest import EXAMPLES, run_cli, write_jpeg
from reference import rel_err

import resnet
from resnet import engine, imaging, journal, params
from resnet.errors import ResnetError
from resnet.mean import load_mean
from resnet.spec import build


def _batch():
    mean = load_mean(None)
    return np.concatenate([imaging.preprocess(os.path.join(EXAMPLES, n), mean)
                           for n in ("cat.jpg", "coffee.jpg", "rocket.jpg")])


def _engine(model, layer_num, layers):
    spec = build(layer_num)
    sha = journal.model_checksum(model, [n for n, _ in spec.param_files()])
    return engine.create("inference", spec, None, layers, model, sha, "cpu")


@pytest.mark.parametrize("layer_num,layers", [
    (50, ["pool1", "res3_1_branch2b_conv", "res5_3_branch2c_bn", "output"]),
    (50, ["output", "conv1_bn"]),
    (101, ["res4_23_addto", "res4_1_branch1_bn", "output"]),
    (152, ["pool1", "res4_20_branch2a_conv", "res5_3_branch2c_bn", "output"]),
])
def test_engine_matches_dygraph(model_factory, layer_num, layers):
    model = model_factory(layer_num)
    batch = _batch()
    want = resnet.load(model, layer_num).run(batch, layers)
    got = _engine(model, layer_num, layers).run(batch, layers)
    assert list(got) == layers
    for name in layers:
        assert got[name].shape == want[name].shape
        assert rel_err(got[name], want[name]) <= 1e-4, name
    one = _engine(model, layer_num, layers).run(batch[:1], layers)  # any batch size
    assert rel_err(one[layers[-1]], want[layers[-1]][:1]) <= 1e-4


def test_cache_hit_miss_and_invalidation(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("RESNET_CACHE_DIR", str(tmp_path / "cache"))
    spec = build(50)
    model = tmp_path / "m"
    values = params.random_params(spec, seed=11)
    params.save_model(str(model), spec, values)
    names = [n for n, _ in spec.param_files()]
    sha = journal.model_checksum(str(model), names)
    caplog.set_level("INFO", logger="resnet")
    first = engine.compiled_model(str(model), spec, ["output"], sha)
    assert "compiling ResNet-50" in caplog.text
    caplog.clear()
    assert engine.compiled_model(str(model), spec, ["output"], sha) == first
    assert "found in cache" in caplog.text and "compiling" not in caplog.text
    other_layers = engine.compiled_model(str(model), spec, ["pool1"], sha)
    assert other_layers != first
    batch = _batch()[:1]
    before = engine.InferenceEngine(first, ["output"]).run(batch)["output"]
    # change one weight: new checksum, new compiled model, new outputs
    values["_output.wbias"] = values["_output.wbias"] + 5.0 * np.eye(1000, dtype=np.float32)[3]
    params.save_model(str(model), spec, values)
    sha2 = journal.model_checksum(str(model), names)
    assert sha2 != sha
    second = engine.compiled_model(str(model), spec, ["output"], sha2)
    assert second != first
    after = engine.InferenceEngine(second, ["output"]).run(batch)["output"]
    assert after[0].argmax() == 3 and not np.allclose(before, after)
    entries = sorted(os.listdir(tmp_path / "cache"))
    assert len(entries) == 3 and not [e for e in entries if e.startswith(".")]  # no leftovers


def test_order_kept_with_many_workers_and_a_bad_file(model50, tmp_path):
    names = []
    for i in range(12):
        names.append(os.path.basename(write_jpeg(tmp_path / f"p{i}.jpg", 100 + 9 * i, 150, i)))
        if i == 6:
            (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8garbage")
            names.append("broken.jpg")
    (tmp_path / "l.txt").write_text("\n".join(names))
    out = tmp_path / "out"
    r = run_cli("--job=extract", f"--model={model50}", f"--data={tmp_path / 'l.txt'}",
                f"--output_dir={out}", "--output_layer=output", "--workers=4", "--batch_size=5",
                "--use_gpu=0")
    assert r.returncode == 3, r.stderr
    feats = resnet.load_features(str(out))
    assert feats.images == [n for n in names if n != "broken.jpg"]
    assert (out / "failed.txt").read_text().startswith("broken.jpg\t")
    net = resnet.load(model50, 50)
    mean = load_mean(None)
    for i in (0, 7, 11):
        want = net.run(imaging.preprocess(str(tmp_path / f"p{i}.jpg"), mean), ["output"])
        row = feats.images.index(f"p{i}.jpg")
        assert rel_err(feats["output"][row], want["output"][0]) <= 1e-4


@pytest.mark.parametrize("flags,message", [
    (["--trt"], "--trt needs the GPU"),
    (["--precision=fp16"], "--precision=fp16 needs the GPU"),
    (["--engine=dygraph", "--precision=bf16"], "--precision=bf16 needs --engine=inference"),
])
def test_option_errors(model50, tmp_path, flags, message):
    r = run_cli("--job=extract", f"--model={model50}", f"--data={EXAMPLES}/cat.jpg",
                f"--output_dir={tmp_path}", "--use_gpu=0", *flags)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert message in r.stderr.strip().splitlines()[-1]


def test_check_options_directly():
    engine.check_options("inference", "cpu", False, "fp32")
    engine.check_options("inference", "gpu", True, "fp16")
    with pytest.raises(ResnetError, match="bf16 is for the CPU"):
        engine.check_options("inference", "gpu", False, "bf16")
