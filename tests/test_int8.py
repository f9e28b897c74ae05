"""--precision=int8: Paddle's PTQ calibrated on images, run by the CPU engine, measured against
fp32 on first use and refused under the cosine bound.

ResNet-18 with seeded random weights whose batch norms take their statistics from probe photos
and whose residual branches are scaled down by 0.25 (vgg_weights.seeded_weights: at full scale
a random ResNet is chaotic, and no 8-bit model of it can be judged); the images are crops of
the example photos. Random weights make top-1 agreement meaningless, so the checks are on
features: the pooled-feature cosine the engine reports and the rows written, against an fp32
run of the same images.
"""
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ALL_CPUS, EXAMPLES, every_cpu, run_cli
from vgg_weights import seeded_weights

import resnet
from resnet.errors import ResnetError
from resnet.runtime import engine

LAYERS = "res5_2_branch2b_bn,output"
RESIDUAL_SCALE = 0.25
IMAGES = 16  # photo crops: the calibration and measurement set
# one worker: the quantized entry is made once; and the group of the tests that take every
# CPU (test_ray.py), since the streams tests do too
pytestmark = pytest.mark.xdist_group("whole_machine")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A ResNet-18, IMAGES photo crops, an engine cache, and an fp32 extract of the crops."""
    from resnet.modelio import params
    from resnet.models import build_arch

    d = tmp_path_factory.mktemp("int8")
    photos = [cv2.imread(os.path.join(EXAMPLES, n)) for n in sorted(os.listdir(EXAMPLES))
              if n.endswith(".jpg")]
    rng = np.random.default_rng(0)
    (d / "img").mkdir()
    for i in range(IMAGES):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        y, x = int(rng.integers(0, h // 4)), int(rng.integers(0, w // 4))
        crop = img[y:y + 3 * h // 4, x:x + 3 * w // 4]
        cv2.imwrite(str(d / "img" / f"p{i:02d}.jpg"), crop[:, ::-1] if i % 2 else crop)
    model = d / "model"
    model.mkdir()
    params.save_model(str(model), build_arch("resnet18_v1"),
                      seeded_weights("resnet18_v1", residual_scale=RESIDUAL_SCALE))
    env = {"RESNET_CACHE_DIR": str(d / "cache")}
    r = run_cli("--job=extract", f"--model={model}", "--layer_num=18", f"--data={d / 'img'}",
                f"--output_dir={d / 'fp32'}", f"--output_layer={LAYERS}", "--use_gpu=0",
                env=env)
    assert r.returncode == 0, r.stderr
    return d, model, env


def _extract(work, out, *flags):
    d, model, env = work
    precision = [] if any(f.startswith("--precision") for f in flags) else ["--precision=int8"]
    return run_cli("--job=extract", f"--model={model}", "--layer_num=18", f"--data={d / 'img'}",
                   f"--output_dir={d / out}", f"--output_layer={LAYERS}", "--use_gpu=0",
                   *precision, *flags, env=env)


def _pooled_cosine(a, b):
    a, b = a.mean(axis=(2, 3)), b.mean(axis=(2, 3))
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_int8_is_calibrated_measured_cached_and_close(work):
    d, _, _ = work
    with every_cpu():  # the whole machine, as a user's run has it: int8 streams are timed
        count = engine.stream_count("cpu", 0)
        r = _extract(work, "int8")
    assert r.returncode == 0, r.stderr
    assert f"int8 calibration: {IMAGES} images from the start of --data {d / 'img'}" in r.stderr
    assert f"quantizing it to int8 (hist calibration on {IMAGES} images" in r.stderr
    mode = engine.int8_mode("openvino")  # the ops outside int8 in bf16 where it is native
    assert "engine: Paddle Inference with OpenVINO on CPU (" in r.stderr
    assert ("int8, the other ops bf16)" if mode == "int8+bf16" else "int8)") in r.stderr
    # one line per level measured: the first level within the bound is the one run (every op
    # int8 with VNNI; without it, as with the kernels capped at AVX2, a later level)
    lines = [x for x in r.stderr.splitlines() if f"int8 vs fp32 on {IMAGES} calibration" in x]
    assert "(accepted:" in lines[-1] and all("(refused:" in x for x in lines[:-1]), lines
    reported = float(lines[-1].split("cosine min ")[1].split()[0])
    assert 0.99 <= reported <= 1.0
    records = {e: json.loads((e / "checked.json").read_text())[f"openvino/{mode}"]
               for e in (d / "cache").iterdir()
               if json.loads((e / "entry.json").read_text()).get("precision") == "int8"}
    assert len(records) == len(lines)
    [entry] = [e for e, record in records.items() if record["accepted"]]
    assert json.loads((entry / "entry.json").read_text())["activations"] == "u8"  # OpenVINO
    record = records[entry]
    assert record["images"] == IMAGES and record["cosine_min"] == pytest.approx(reported, abs=1e-4)
    assert set(record["max_rel_err"]) == set(LAYERS.split(","))
    if count > 1:  # one process per core, timed against one process
        rates = record["streams_img_per_s"]
        assert set(rates) == {"1", str(count)} and all(v > 0 for v in rates.values())
        assert record["streams"] == int(max(rates, key=rates.get))
        assert (f"int8 speed on the calibration images: one process {rates['1']} img/s, "
                f"{count} processes {rates[str(count)]} img/s") in r.stderr
    else:
        assert "streams" not in record
    streamed = f"on CPU ({count} processes x " in r.stderr
    assert streamed == (record.get("streams", 1) > 1)
    assert json.loads((d / "int8" / "manifest.json").read_text())["precision"] == "int8"
    with resnet.load_features(str(d / "int8")) as got, \
            resnet.load_features(str(d / "fp32")) as want:
        assert got.images == want.images
        a = np.asarray(got["res5_2_branch2b_bn"], np.float64)
        b = np.asarray(want["res5_2_branch2b_bn"], np.float64)
        assert not np.array_equal(a, b)  # really another engine
        assert _pooled_cosine(a, b).min() >= 0.99

    with every_cpu():
        r = _extract(work, "int8_again")  # the cached entry and its recorded measurement
    assert r.returncode == 0, r.stderr
    assert "quantizing" not in r.stderr and "int8 measured against fp32 on first use" in r.stderr
    assert "int8 speed on the calibration" not in r.stderr  # the recorded choice of processes
    assert (f"on CPU ({count} processes x " in r.stderr) == streamed


@pytest.fixture
def whole_machine():
    with every_cpu():
        yield


@pytest.mark.skipif(len(ALL_CPUS) < 2, reason="engine streams need 2 CPUs; this machine has 1")
def test_streams_split_each_batch_in_order_and_fail_in_one_line(work, whole_machine,
                                                                 monkeypatch, caplog):
    """One int8 model run by two single-core processes: each batch split between them and
    put back in order, with the values one process with both cores computes; a stream that
    cannot load or dies ends the run with one line, and closing stops them."""
    from resnet.inputs import imaging
    from resnet.modelio import params
    from resnet.models import build_arch
    from resnet.models.preprocessing import V1
    from resnet.runtime import streams as streams_module
    from resnet.runtime.streams import Streams

    d, model, env = work
    layers, spec = LAYERS.split(","), build_arch("resnet18_v1")
    images = np.concatenate([imaging.preprocess(str(p), V1)
                             for p in sorted((d / "img").iterdir())])
    with pytest.MonkeyPatch.context() as m:  # the CLI runs' entry where they made it
        m.setenv("RESNET_CACHE_DIR", env["RESNET_CACHE_DIR"])
        prefix = engine.compiled_model(str(model), spec, layers,
                                       params.model_checksum(str(model), spec),
                                       calibration=images, unsigned=True,
                                       narrow=engine.narrow_int8("openvino"))
    one = engine.InferenceEngine(prefix, layers, precision="int8", backend="openvino")
    want = one.run(images, layers)
    shapes = {k: v.shape[1:] for k, v in want.items()}
    streams = Streams("resnet.runtime.engine:InferenceEngine", prefix, layers, 2, "int8", 6,
                      "openvino", (3, 224, 224), shapes)
    assert (streams.count, sum(streams.threads), streams.per) == (2, len(ALL_CPUS), 3)
    for n in (1, 3, IMAGES):  # IMAGES > 2 x 6 crops: two rounds
        got = streams.run(images[:n], layers)
        for k in layers:
            assert got[k].shape == want[k][:n].shape
            assert engine.rel_err(got[k], want[k][:n]) <= 1e-5, (n, k)
    procs = list(streams.procs)
    procs[1].kill()
    procs[1].wait()
    with pytest.raises(ResnetError, match=r"^engine stream 2 of 2 exited \(exit code -9\)$"):
        streams.run(images[:4], layers)
    streams.close()
    assert all(p.poll() is not None for p in procs)

    # the engine keeps one process when its streams cannot start, and says so
    def cannot_start(*args):
        raise ResnetError("engine stream 1 of 2 exited (exit code 1)")

    monkeypatch.setattr(streams_module, "Streams", cannot_start)
    monkeypatch.setenv("RESNET_CACHE_DIR", env["RESNET_CACHE_DIR"])
    values = params.load_model(str(model), spec)
    reference = engine.reference_outputs(spec, values, layers, images)
    with caplog.at_level("INFO", logger="resnet"):  # --check: whatever an earlier run chose
        net = engine.create("inference", spec, values, layers, str(model),
                            params.model_checksum(str(model), spec), precision="int8",
                            check=True, calibration=images, reference=lambda: reference)
    assert isinstance(net, engine.InferenceEngine) and net.measured["cosine_min"] >= 0.99
    assert ("int8 engine processes could not start (engine stream 1 of 2 exited (exit code "
            "1)); running one process") in caplog.text

    with pytest.raises(ResnetError, match=r"^engine stream 1 of 2 failed: Paddle "
                       r"Inference could not load the compiled model .*missing"):
        Streams("resnet.runtime.engine:InferenceEngine", str(d / "missing" / "model"), layers,
                2, "int8", 6, "onednn", (3, 224, 224), shapes)


def test_calibration_list_is_part_of_the_key(work):
    d, _, _ = work
    calib = d / "calib.txt"
    calib.write_text("".join(f"{d / 'img' / f'p{i:02d}.jpg'}\n" for i in range(10)))
    r = _extract(work, "int8_calib", f"--calibration={calib}")
    assert r.returncode == 0, r.stderr
    assert f"int8 calibration: 10 images from --calibration {calib}" in r.stderr
    assert "quantizing it to int8 (hist calibration on 10 images" in r.stderr


def test_too_few_calibration_images(work, tmp_path):
    d, _, _ = work
    calib = tmp_path / "few.txt"
    calib.write_text(f"{d / 'img' / 'p00.jpg'}\n{tmp_path / 'missing.jpg'}\n")
    r = _extract(work, "few", f"--calibration={calib}")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        f"resnet: error: {calib}: 1 usable calibration images, --precision=int8 needs at least 8")


def test_calibration_without_int8_is_an_error(work):
    d, model, env = work
    r = run_cli("--job=extract", f"--model={model}", "--layer_num=18", f"--data={d / 'img'}",
                f"--output_dir={d / 'nope'}", f"--calibration={d / 'img'}", "--use_gpu=0", env=env)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == \
        "resnet: error: --calibration is for --precision=int8, bf16 or auto only"
    assert not (d / "nope").exists()


def test_int8_under_the_cosine_bound_tries_fp32_stages_then_refuses(work, monkeypatch, caplog):
    """Under the bound, the next model leaves the two ends out of int8; each level's
    measurement is recorded, so a second run refuses without quantizing again."""
    d, model, env = work
    monkeypatch.setenv("RESNET_CACHE_DIR", env["RESNET_CACHE_DIR"])
    monkeypatch.setattr(engine, "INT8_MIN_COSINE", 1.01)  # no int8 engine reaches it
    monkeypatch.setattr(engine, "INT8_LEVELS", 2)
    refusal = (r"^--precision=int8 refused: the pooled res5_2_branch2b_bn features of a "
               r"calibration image have cosine 0\.9\d+ with fp32's, under the bound 1\.01 "
               r"\(even with 2 convolutions and fcs left out of int8\); calibrate on images "
               r"like your data \(--calibration=LIST\) or use --precision=fp32$")
    # the second level's model, unless the first int8 run needed it already (as without VNNI)
    built = any(json.loads((e / "entry.json").read_text()).get("fp32_ops")
                for e in (d / "cache").iterdir())
    references = []  # the fp32 reference is computed once for all the levels measured
    reference_outputs = engine.reference_outputs
    monkeypatch.setattr(engine, "reference_outputs",
                        lambda *a, **k: references.append(1) or reference_outputs(*a, **k))
    for run in ("refused", "refused_again", "checked"):  # checked: both levels measured
        references.clear()
        caplog.clear()
        with caplog.at_level("INFO", logger="resnet"), pytest.raises(ResnetError,
                                                                     match=refusal):
            resnet.extract(model, str(d / "img"), layers=LAYERS.split(","), layer_num=18,
                           output_dir=str(d / run), use_gpu=False, precision="int8",
                           check=run == "checked")
        text = caplog.text
        assert "trying again with 2 convolutions and fcs left out of int8" in text
        assert ("fcs left out, about a minute" in text) == (run == "refused" and not built)
        assert "quantizing" not in text or run == "refused"
        # measured already: by the earlier run of this loop, or by the int8 test before it
        # where that one needed the second level
        measured = run == "refused_again" or (run == "refused" and built)
        assert len(references) == (0 if measured else 1)
        if run == "checked":
            assert text.count(f"int8 vs fp32 on {IMAGES} calibration images") == 2


def test_int8_levels_keep_the_sensitive_ops_then_the_earliest_stages():
    """ResNet-50: the stem and the classifier (2 ops), then the four shortcut projections too
    (6), then the stem's stage with res2 (15); VGG-16: the first conv and the last fc, then
    blocks 1-2, then block 3; Xception: its projections are the entry and exit blocks'
    `residual` convs (the middle blocks add their input as it is); never every op (that
    would be fp32)."""
    from resnet.models import build_arch

    spec = build_arch("resnet50_v1")
    nodes = engine.quantizable_nodes(spec, ["avgpool", "output"])
    assert len(nodes) == 54 and nodes[0].name == "conv1_conv" and nodes[-1].name == "output"
    levels = engine.int8_levels(spec, ["avgpool", "output"])
    assert [len(k) for k in levels] == [0, 2, 6, 15]
    assert [nodes[i].name for i in levels[1]] == ["conv1_conv", "output"]
    assert [nodes[i].name for i in levels[2]] == [
        "conv1_conv", "res2_1_branch1_conv", "res3_1_branch1_conv", "res4_1_branch1_conv",
        "res5_1_branch1_conv", "output"]
    assert {nodes[i].name for i in levels[3]} - {nodes[i].name for i in levels[2]} == {
        n.name for n in nodes if n.name.startswith("res2_")} - {"res2_1_branch1_conv"}
    vgg = build_arch("vgg16")
    nodes = engine.quantizable_nodes(vgg, ["fc7"])
    assert [n.name for n in nodes][-2:] == ["fc6_fc", "fc7_fc"]
    levels = engine.int8_levels(vgg, ["fc7"])
    assert [[nodes[i].name for i in k] for k in levels[:2]] == [[], ["conv1_1_conv", "fc7_fc"]]
    assert [len(k) for k in levels] == [0, 2, 5, 8]
    xception = build_arch("xception")  # depthwise convs are not PTQ's: not counted
    nodes = engine.quantizable_nodes(xception, ["avgpool"])
    assert not any("depthwise" in n.name for n in nodes)
    assert [nodes[i].name for i in engine.sensitive_ops(xception, ["avgpool"])] == [
        "block1_conv1", "block2_residual", "block3_residual", "block4_residual",
        "block13_residual", "block14_sepconv2"]


def test_the_test_model_is_stable_like_a_trained_one():
    """The premise of every bound checked here: fp32 features of the test model barely move
    under input noise of 1% of the images' spread (a trained network's do not either), so
    what int8 moves is int8's doing."""
    from vgg_weights import probe_batch

    from resnet.models import build_arch
    from resnet.runtime.network import Network

    images = probe_batch()
    net = Network(build_arch("resnet18_v1")).load_params(
        seeded_weights("resnet18_v1", residual_scale=RESIDUAL_SCALE))
    noisy = images + 0.01 * images.std() * np.random.default_rng(0).standard_normal(
        images.shape).astype(np.float32)
    layer = LAYERS.split(",")[0]
    want, got = net.run(images, [layer])[layer], net.run(noisy, [layer])[layer]
    assert engine.pooled_cosine(got, want).min() >= 0.999


def test_a_model_with_every_op_kept_in_fp32_equals_fp32(work, tmp_path, monkeypatch):
    """The quantizer rounds only what int8 kernels read: with every conv and fc left in fp32
    the quantized program is the fp32 network (Paddle's default also rounded every conv,
    batch norm, add and pool output to 8 bits, which alone moved such a model far from
    fp32: docs/engine_notes.md)."""
    from resnet.models import build_arch
    from resnet.modelio import params
    from resnet.runtime import quantize
    from resnet.runtime.network import Network

    d, model, env = work
    monkeypatch.setattr(engine, "int8_mode", lambda backend: "int8")  # the rest in fp32
    spec, layers = build_arch("resnet18_v1"), LAYERS.split(",")
    values = params.load_model(str(model), spec)
    fp32 = engine.compiled_model(str(model), spec, layers, "x" * 64)
    ops = len(engine.quantizable_nodes(spec, layers))
    x = np.random.default_rng(1).uniform(-100, 100, (8, 3, 224, 224)).astype(np.float32)
    prefix = str(tmp_path / "model")
    quantize.quantize(fp32, x, prefix, tuple(range(ops)), ops)
    got = engine.InferenceEngine(prefix, layers, precision="int8").run(x, layers)
    want = Network(spec).load_params(values).run(x, layers)
    for k in layers:
        assert engine.rel_err(got[k], want[k]) <= 1e-4, k
    with pytest.raises(ResnetError, match="int8 quantization failed: the program has "
                                          f"{ops} quantizable ops"):
        (tmp_path / "bad").mkdir()
        quantize.quantize(fp32, x, str(tmp_path / "bad" / "model"), (0,), ops + 1)


# the stored integer weights of a quantized model, per quantized op in program order: the
# largest |value| (a legacy program: read in a child, like the engine's own static steps)
_INT_WEIGHTS = """
import json, sys
import numpy as np
import paddle
paddle.enable_static()
exe = paddle.static.Executor(paddle.CPUPlace())
program, _, _ = paddle.static.load_inference_model(sys.argv[1], exe)
block, scope = program.global_block(), paddle.static.global_scope()
print(json.dumps([float(np.abs(np.array(scope.find_var(op.input("X")[0]).get_tensor())).max())
                  for op in block.ops if op.type == "dequantize_linear"
                  and block.var(op.input("X")[0]).persistable]))
"""


# int8 models run with the kernels capped at AVX2 (ONEDNN_MAX_CPU_ISA, set for this child):
# IMAGES.npy WIDE NARROW LAYER -> IMAGES.npy.wide.npy, IMAGES.npy.narrow.npy
_ON_AVX2 = """
import sys
import numpy as np
from resnet.runtime import engine
images, wide, narrow, layer = sys.argv[1:5]
x = np.load(images)
for name, prefix in (("wide", wide), ("narrow", narrow)):
    net = engine.InferenceEngine(prefix, [layer], precision="int8", backend="openvino")
    np.save(f"{images}.{name}.npy", net.run(x, [layer])[layer])
"""


def test_unsigned_activations_after_relus_for_openvino_only(work, monkeypatch, caplog):
    """For OpenVINO the activations after ReLUs are quantized unsigned ([0, T] in 256 steps
    instead of PTQ's [-T, T], of which they use half): closer to fp32 than the signed model
    calibrated on the same images. With `narrow` (CPUs without VNNI: engine.narrow_int8) the
    op reading a signed input, the stem, has 7-bit weights and every other op 8-bit ones,
    which without VNNI is closer to fp32 than 8-bit weights everywhere.
    When OpenVINO hands a model over to oneDNN, whose int8 passes do not read the zero points
    this takes, the signed model is built and run."""
    import subprocess
    import sys

    from resnet.inputs import imaging
    from resnet.modelio import params
    from resnet.models import build_arch
    from resnet.models.preprocessing import V1

    d, model, env = work
    monkeypatch.setenv("RESNET_CACHE_DIR", env["RESNET_CACHE_DIR"])
    spec, layers = build_arch("resnet18_v1"), LAYERS.split(",")
    values, sha = params.load_model(str(model), spec), params.model_checksum(str(model), spec)
    images = np.concatenate([imaging.preprocess(str(p), V1)
                             for p in sorted((d / "img").iterdir())])
    want = engine.reference_outputs(spec, values, layers, images)
    off, prefixes = {}, {}  # 1 - pooled cosine with fp32, per image; the models
    for unsigned in (False, True):
        prefix = engine.compiled_model(str(model), spec, layers, sha, calibration=images,
                                       unsigned=unsigned, narrow=unsigned)
        prefixes[unsigned] = prefix
        entry = json.loads((Path(prefix).parent / "entry.json").read_text())
        assert entry["activations"] == ("u8" if unsigned else "s8")
        assert entry["weights"] == ("7-bit where the input is signed" if unsigned
                                    else "8-bit")
        r = subprocess.run([sys.executable, "-c", _INT_WEIGHTS, prefix], capture_output=True,
                           text=True, env=dict(os.environ, FLAGS_enable_pir_api="0"))
        assert r.returncode == 0, r.stderr
        largest = json.loads(r.stdout.splitlines()[-1])
        assert len(largest) == len(engine.quantizable_nodes(spec, layers))
        assert largest == [63.0 if unsigned else 127.0] + [127.0] * (len(largest) - 1)
        net = engine.InferenceEngine(prefix, layers, precision="int8", backend="openvino")
        got = net.run(images, layers)[layers[0]]
        off[unsigned] = 1 - engine.pooled_cosine(got, want[layers[0]])
    # measured 0.61 of the signed model's error (AMD Zen 4), 0.52 capped at AVX2
    assert off[True].mean() < 0.8 * off[False].mean(), off

    # without VNNI (a real AVX2-only CPU, or the kernels capped at AVX2 in a child) the stem's
    # 8-bit weights saturate AVX2's pairwise sums: the 7-bit ones are much closer to fp32
    # (measured 0.27 of the error on a Zen 3)
    wide = engine.compiled_model(str(model), spec, layers, sha, calibration=images,
                                 unsigned=True)
    np.save(d / "calibration.npy", images)
    r = subprocess.run([sys.executable, "-c", _ON_AVX2, str(d / "calibration.npy"), wide,
                        prefixes[True], layers[0]], capture_output=True, text=True,
                       env=dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2"))
    assert r.returncode == 0, r.stderr
    avx2 = {k: 1 - engine.pooled_cosine(np.load(f"{d / 'calibration.npy'}.{k}.npy"),
                                        want[layers[0]]) for k in ("wide", "narrow")}
    assert avx2["narrow"].mean() < 0.5 * avx2["wide"].mean(), avx2

    configure, onednn_models = engine.configure, []

    def without_openvino(config, **kw):
        if kw["backend"] == "openvino":
            raise RuntimeError("OpenVINO is not available here")
        onednn_models.append(config.prog_file())
        return configure(config, **kw)

    monkeypatch.setattr(engine, "configure", without_openvino)
    monkeypatch.setattr(engine, "cpu_backend", lambda: "openvino")
    with caplog.at_level("INFO", logger="resnet"):
        net = engine.create("inference", spec, values, layers, str(model), sha,
                            precision="int8", calibration=images, reference=lambda: want)
    assert net.backend == "onednn"
    assert "OpenVINO could not run this model (OpenVINO is not available here)" in caplog.text
    entry = json.loads((Path(net.prefix).parent / "entry.json").read_text())
    assert entry["activations"] == "s8" and net.measured["cosine_min"] >= 0.99
    # oneDNN only ever loaded signed models (the unsigned one was not loaded in vain), the
    # accepted one last (on an AVX2-only CPU, Zen 3, oneDNN refuses the first level here)
    loaded = [json.loads((Path(m).parent / "entry.json").read_text())["activations"]
              for m in onednn_models]
    assert loaded and set(loaded) == {"s8"}, loaded
    assert os.path.dirname(onednn_models[-1]) == os.path.dirname(net.prefix)


def test_auto_chooses_the_fastest_precision_within_the_bound(work):
    d, model, env = work
    r = _extract(work, "auto", "--precision=auto")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stderr.splitlines() if "--precision=auto chose" in x)
    manifest = json.loads((d / "auto" / "manifest.json").read_text())
    assert manifest["precision"] == "auto"
    chosen, rates = manifest["precision_chosen"], manifest["precision_measured"]["img_per_s"]
    assert set(rates) <= set(engine.candidates()) and "fp32" in rates
    assert chosen == max(rates, key=rates.get) and f"chose {chosen} " in line
    cosines = manifest["precision_measured"]["cosine_min"]  # of each candidate that passed
    assert set(cosines) == set(rates) - {"fp32"} and all(c >= 0.99 for c in cosines.values())
    assert "engine: Paddle Inference with OpenVINO on CPU (" in r.stderr
    with resnet.load_features(str(d / "auto")) as got, \
            resnet.load_features(str(d / "fp32")) as want:
        a = np.asarray(got["res5_2_branch2b_bn"], np.float64)
        b = np.asarray(want["res5_2_branch2b_bn"], np.float64)
        assert _pooled_cosine(a, b).min() >= 0.99
    r = _extract(work, "auto_again", "--precision=auto")  # the recorded choice
    assert r.returncode == 0, r.stderr
    assert "measured now; " in line
    assert line.replace("measured now", "measured on first use; --check measures again") \
        in r.stderr
    assert f"vs fp32 on {IMAGES} calibration images" not in r.stderr  # nothing measured again
    r = _extract(work, "auto_checked", "--precision=auto", "--check")  # measured again
    assert r.returncode == 0, r.stderr
    assert "--precision=auto chose " in r.stderr and "(measured now; " in r.stderr
    # one fp32 reference for every candidate measured (int8's levels and bf16)
    assert r.stderr.count(f"resnet: fp32 reference: {IMAGES} calibration images") == 1, \
        r.stderr
    if "bf16" not in engine.candidates():
        return  # the rest is bf16's, which this CPU does not run natively
    r = _extract(work, "bf16", "--precision=bf16")  # bf16 alone reads auto's measurement
    assert r.returncode == 0, r.stderr
    assert f"bf16 calibration: {IMAGES} images from the start of --data {d / 'img'}" \
        in r.stderr
    assert "bf16 measured against fp32 on first use: pooled res5_2_branch2b_bn cosine min " \
        in r.stderr and "bf16 vs fp32" not in r.stderr
    with resnet.load_features(str(d / "bf16")) as got, \
            resnet.load_features(str(d / "fp32")) as want:
        a = np.asarray(got["res5_2_branch2b_bn"], np.float64)
        b = np.asarray(want["res5_2_branch2b_bn"], np.float64)
        assert _pooled_cosine(a, b).min() >= 0.99 and 1e-4 < engine.rel_err(a, b)
    with pytest.raises(ResnetError, match="--precision=auto measures the CPU's precisions"):
        engine.check_options("inference", "gpu", False, "auto")
