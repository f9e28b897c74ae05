"""The compiled Paddle Inference engine and the overlapped pipeline: equal to the dygraph
reference, cached, guarded, in order."""
import json
import os
import threading

import numpy as np
import pytest
from conftest import ALL_CPUS, EXAMPLES, ROOT, every_cpu, run_cli, write_jpeg
from reference import rel_err

import resnet
from resnet.models.preprocessing import V1
from resnet.common import cpu
from resnet.runtime import cache, engine
from resnet.inputs import decoding as pipeline, imaging
from resnet.modelio import params
from resnet.errors import ImageError, ResnetError
from resnet.inputs.lists import Item
from resnet.models import build
from resnet.runners.local import Writer


def _batch():
    mean = V1  # v1's preprocessing (a Recipe)
    return np.concatenate([imaging.preprocess(os.path.join(EXAMPLES, n), mean)
                           for n in ("cat.jpg", "coffee.jpg", "rocket.jpg")])


def _engine(model, layer_num, layers, **kw):
    spec = build(layer_num)
    sha = params.model_checksum(model, spec)
    return engine.create("inference", spec, None, layers, model, sha, "cpu", **kw)


@pytest.mark.parametrize("layer_num,layers", [
    (50, ["pool1", "res3_1_branch2b_conv", "res5_3_branch2c_bn", "output"]),
    (50, ["output", "conv1_bn"]),
])
def test_engine_matches_dygraph(model_factory, layer_num, layers):
    model = model_factory(layer_num)
    batch = _batch()
    want = resnet.load(model, layer_num).run(batch, layers)
    net = _engine(model, layer_num, layers)
    got = net.run(batch, layers)
    assert list(got) == layers
    for name in layers:
        assert got[name].shape == want[name].shape
        assert rel_err(got[name], want[name]) <= 1e-4, name
    one = net.run(batch[:1], layers)  # any batch size
    assert rel_err(one[layers[-1]], want[layers[-1]][:1]) <= 1e-4


def test_onednn_backend_matches_too(model50, monkeypatch):
    """The fallback backend keeps the same contract (RESNET_CPU_BACKEND forces it)."""
    monkeypatch.setenv(engine.BACKEND_ENV, "onednn")
    layers = ["pool1", "res5_3_branch2c_bn", "output"]
    net = _engine(model50, 50, layers)
    assert net.backend == "onednn"
    batch = _batch()
    want = resnet.load(model50, 50).run(batch, layers)
    got = net.run(batch, layers)
    assert max(rel_err(got[k], want[k]) for k in layers) <= 1e-4


def test_verify_fp32(model50):
    """--check's comparison: the fp32 engine is within the 1e-4 contract."""
    spec = build(50)
    values = params.load_model(model50, spec)
    layers = ["res5_3_branch2c_bn", "output"]
    fp32 = engine.verify(_engine(model50, 50, layers), spec, values, layers)
    assert max(fp32.values()) <= 1e-4


@pytest.mark.skipif(cpu.bf16_support() is None,
                    reason="this CPU has no native bf16 (no avx512_bf16 or amx_bf16 flag): "
                           "--precision=bf16 is refused here, see test_bf16_refused_without_it")
def test_bf16_is_measured_on_calibration_images_kept_and_refused_under_the_bound(
        model50, monkeypatch, caplog):
    """bf16 is measurably less exact, only ever asked for, and judged as int8 is: pooled
    cosine against fp32 on the calibration images, kept in the model's cache entry."""
    layers = ["res5_3_branch2c_bn", "output"]
    images = _batch()
    with pytest.raises(ResnetError, match="--precision=bf16 needs calibration images"):
        _engine(model50, 50, layers, precision="bf16")
    caplog.set_level("INFO", logger="resnet")
    net = _engine(model50, 50, layers, precision="bf16", calibration=images)
    stats = net.measured
    assert "bf16 vs fp32 on 3 calibration images: " in caplog.text
    # against fp32 computed here by the dygraph network
    want = resnet.load(model50, 50).run(images, layers)
    got = net.run(images, layers)
    assert 1e-4 < rel_err(got["output"], want["output"]) < 0.1  # less exact, not broken
    assert stats["cosine_min"] == pytest.approx(
        engine.pooled_cosine(got[layers[0]], want[layers[0]]).min(), abs=1e-6)
    assert stats["accepted"] and stats["images"] == 3 and stats["layer"] == layers[0]
    assert stats["top1_agreement"] == np.mean(got["output"].argmax(1) == want["output"].argmax(1))
    folder = os.path.dirname(net.prefix)
    key = engine.bf16_key(net.backend, engine.calibration_checksum(images))
    assert json.loads(json.dumps(stats)) == cache.checks(folder)[key]
    assert key != engine.bf16_key(net.backend, engine.calibration_checksum(images[:2]))

    caplog.clear()  # a later run reads the measurement
    assert _engine(model50, 50, layers, precision="bf16", calibration=images).measured == stats
    assert "bf16 measured against fp32 on first use: " in caplog.text
    assert "calibration images" not in caplog.text

    monkeypatch.setattr(engine, "INT8_MIN_COSINE", 1.5)  # no image reaches it: refused
    refused = (r"--precision=bf16 refused: the pooled res5_3_branch2c_bn features of a "
               r"calibration image have cosine [01]\.\d{4} with fp32's, under the bound 1\.5")
    with pytest.raises(ResnetError, match=refused):  # other images: measured again
        _engine(model50, 50, layers, precision="bf16", calibration=images[:2])
    monkeypatch.setattr(engine, "InferenceEngine", None)  # the refusal kept: nothing loaded
    with pytest.raises(ResnetError, match=refused):
        _engine(model50, 50, layers, precision="bf16", calibration=images[:2])
    with pytest.raises(ResnetError, match=refused):  # recorded as accepted, under this bound
        _engine(model50, 50, layers, precision="bf16", calibration=images)


def test_bf16_refused_without_cpu_support(monkeypatch):
    """A CPU without bf16 would run fp32 while the log said bf16: refused instead."""
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "fma"}))
    with pytest.raises(ResnetError, match=r"lacks bf16 support \(no avx512_bf16 or amx_bf16"):
        engine.check_options("inference", "cpu", False, "bf16")
    monkeypatch.setattr(cpu, "cpu_flags", lambda: None)  # not Linux: cannot tell, so refuse
    with pytest.raises(ResnetError, match="cannot be checked for bf16 support"):
        engine.check_options("inference", "cpu", False, "bf16")
    for flag in cpu.BF16_FLAGS:
        monkeypatch.setattr(cpu, "cpu_flags", lambda f=flag: frozenset({"avx2", f}))
        engine.check_options("inference", "cpu", False, "bf16")
    engine.check_options("inference", "cpu", False, "fp32")  # fp32 never depends on it


def test_cpu_flags_parsed_from_cpuinfo(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU  X\nflags\t\t: fpu avx2 amx_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    flags = cpu.cpu_flags.__wrapped__(str(info))
    assert flags == {"fpu", "avx2", "amx_bf16"}
    assert cpu.bf16_support(flags) == "amx_bf16"
    assert cpu.bf16_support(frozenset({"avx2"})) is None
    # int8 (--precision=auto's first candidate): the best of VNNI / AMX, else AVX2's u8 x s8
    assert cpu.int8_support(flags) == "avx2"
    assert cpu.int8_support(frozenset({"avx2", "avx512_vnni"})) == "avx512_vnni"
    assert cpu.int8_support(frozenset({"sse4_2"})) is None
    assert cpu.cpu_name(str(info)) == "Some CPU X"
    assert cpu.cpu_flags.__wrapped__(str(tmp_path / "missing")) is None
    # a cap on the kernels' instruction set (an older CPU emulated) hides what is above it
    zen4 = frozenset({"avx2", "avx512_vnni", "avx512_bf16"})
    for cap, int8, bf16 in (("AVX2", "avx2", None), ("avx512_core_vnni", "avx512_vnni", None),
                            ("AVX512_CORE_BF16", "avx512_vnni", "avx512_bf16"),
                            ("ALL", "avx512_vnni", "avx512_bf16"), ("SSE41", None, None)):
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
        assert (cpu.int8_support(zen4), cpu.bf16_support(zen4)) == (int8, bf16), cap
        # 7-bit weights where the input is signed: OpenVINO on AVX2's int8 arithmetic only
        monkeypatch.setattr(cpu, "cpu_flags", lambda: zen4)
        assert engine.narrow_int8("openvino") is (int8 == "avx2"), cap
        assert engine.narrow_int8("onednn") is False


def test_mkl_takes_its_avx2_kernels_on_amd_cpus_that_have_them(tmp_path):
    """Paddle's MKL runs a generic path on CPUs not made by Intel: on AMD CPUs with AVX2 and
    FMA it is told to take its AVX2 kernels (the dygraph reference ran 2.5x faster); never
    elsewhere, and never over a user's own setting. (Every comparison of the suite with the
    dygraph reference runs under it on an AMD machine.)"""
    import subprocess
    import sys

    from resnet.runtime import paddle_env

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu avx2 fma\n")
    assert cpu.cpu_vendor(str(info)) == "AuthenticAMD"
    assert cpu.cpu_vendor(str(tmp_path / "missing")) is None
    amd = {"avx2", "fma", "avx512f"}
    assert paddle_env.mkl_cpu_type("AuthenticAMD", amd) == "5"
    assert paddle_env.mkl_cpu_type("AuthenticAMD", {"avx", "sse4_2"}) is None  # before AVX2
    assert paddle_env.mkl_cpu_type("GenuineIntel", amd) is None  # MKL's own choice is right
    assert paddle_env.mkl_cpu_type(None, None) is None
    probe = "import os, resnet.runtime.paddle_env; print(os.environ.get('MKL_DEBUG_CPU_TYPE'))"
    env = {k: v for k, v in os.environ.items() if k != "MKL_DEBUG_CPU_TYPE"}
    for own, want in ((None, paddle_env.mkl_cpu_type(cpu.cpu_vendor(), cpu.cpu_flags())),
                      ("4", "4")):
        r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           env=dict(env, PYTHONPATH=ROOT,
                                    **({"MKL_DEBUG_CPU_TYPE": own} if own else {})),
                           timeout=120)
        assert r.stdout.split() == [str(want)], r.stderr


@pytest.mark.skipif(cpu.bf16_support() is not None,
                    reason="this CPU has native bf16, so the CLI's refusal cannot be seen here")
def test_bf16_cli_refusal_on_this_cpu(model50, tmp_path):
    r = run_cli("--job=extract", f"--model={model50}", f"--data={EXAMPLES}/cat.jpg",
                f"--output_dir={tmp_path / 'o'}", "--use_gpu=0", "--precision=bf16")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith("; use --precision=fp32")
    assert "bf16)" not in r.stderr  # never logged as the precision in effect
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_cache_hit_miss_and_invalidation(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("RESNET_CACHE_DIR", str(tmp_path / "cache"))
    spec = build(18)  # the cache's logic does not depend on the depth
    model = tmp_path / "m"
    values = params.random_params(spec, seed=11)
    params.save_model(str(model), spec, values)
    sha = params.model_checksum(str(model), spec)
    caplog.set_level("INFO", logger="resnet")
    first = engine.compiled_model(str(model), spec, ["output"], sha)
    assert "compiling ResNet-18" in caplog.text
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
    sha2 = params.model_checksum(str(model), spec)
    assert sha2 != sha
    second = engine.compiled_model(str(model), spec, ["output"], sha2)
    assert second != first
    after = engine.InferenceEngine(second, ["output"]).run(batch)["output"]
    assert after[0].argmax() == 3 and not np.allclose(before, after)
    entries = sorted(os.listdir(tmp_path / "cache"))
    assert len(entries) == 3 and not [e for e in entries if e.startswith(".")]  # no leftovers
    info = json.loads((tmp_path / "cache" / os.path.dirname(first) / "entry.json").read_text())
    assert (info["model_sha256"], info["model_dir"], info["layer_num"], info["layers"]) == \
        (sha, str(model), 18, ["output"])


def test_first_use_is_checked_and_recorded(model_factory, tmp_path, monkeypatch, caplog):
    """Every compiled model meets the dygraph reference once per backend and precision before
    it is trusted; later runs read the record; --check (check=True) always compares.
    ResNet-18: the record does not depend on the depth, and each check runs the reference."""
    model = model_factory(18)
    monkeypatch.setenv("RESNET_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    real_verify = engine.verify
    monkeypatch.setattr(engine, "verify", lambda *a, **k: calls.append(a[-1]) or
                        real_verify(*a, **k))
    caplog.set_level("INFO", logger="resnet")
    layers = ["pool1", "output"]
    net = _engine(model, 18, layers)
    assert len(calls) == 1 and "check: engine matches the dygraph reference" in caplog.text
    [entry] = os.listdir(tmp_path / "cache")
    record = json.loads((tmp_path / "cache" / entry / engine.CHECKED).read_text())
    assert list(record) == [f"{net.backend}/fp32"] and 0 <= record[f"{net.backend}/fp32"] <= 1e-4
    caplog.clear()
    _engine(model, 18, layers)
    assert len(calls) == 1 and "checked against the dygraph reference on first use" in caplog.text
    _engine(model, 18, layers, check=True)
    assert len(calls) == 2
    # an engine that disagrees is refused, with the way out, and nothing is recorded for it
    (tmp_path / "cache" / entry / engine.CHECKED).unlink()
    monkeypatch.setitem(engine.TOLERANCE, "fp32", 0.0)
    with pytest.raises(ResnetError, match=r"differs from the dygraph reference .* over the fp32 "
                                          r"bound 0; run with RESNET_CPU_BACKEND=onednn"):
        _engine(model, 18, layers)
    assert not (tmp_path / "cache" / entry / engine.CHECKED).exists()


def test_cache_key_covers_depth_variant_layers():
    sha = "0" * 64
    keys = {engine.cache_key(sha, build(50), ["output"]),
            engine.cache_key(sha, build(50, "v1.5"), ["output"]),
            engine.cache_key(sha, build(101), ["output"]),
            engine.cache_key(sha, build(50), ["pool1", "output"]),
            engine.cache_key("1" * 64, build(50), ["output"])}
    assert len(keys) == 5


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
                f"--output_dir={out}", "--output_layer=output", "--workers=3", "--batch_size=5",
                "--use_gpu=0", "--check")
    assert r.returncode == 3, r.stderr
    assert "check: engine matches the dygraph reference" in r.stderr
    feats = resnet.load_features(str(out))
    assert feats.images == [n for n in names if n != "broken.jpg"]
    assert (out / "failed.txt").read_text().startswith("broken.jpg\t")
    net = resnet.load(model50, 50)
    mean = V1  # v1's preprocessing (a Recipe)
    for i in (0, 7, 11):
        want = net.run(imaging.preprocess(str(tmp_path / f"p{i}.jpg"), mean), ["output"])
        row = feats.images.index(f"p{i}.jpg")
        assert rel_err(feats["output"][row], want["output"][0]) <= 1e-4


@pytest.mark.parametrize("kind,lockstep", [("process", False), ("process", True),
                                           ("thread", False)])
def test_batched_in_order_with_bad_images(tmp_path, monkeypatch, kind, lockstep):
    monkeypatch.setenv(pipeline.DECODER_ENV, kind)
    mean = V1  # v1's preprocessing (a Recipe)
    items = []
    for i in range(11):
        path = str(tmp_path / f"{i}.jpg")
        if i in (0, 4, 5):
            open(path, "wb").write(b"not an image")
        else:
            write_jpeg(path, 60 + 20 * i, 90, i)
        items.append(Item(f"{i}.jpg", path))
    bad = []
    got = list(pipeline.batched(items, mean, True, 3, lambda it, e: bad.append(it.key),
                                workers=2, lockstep=lockstep))
    good = [it for it in items if it.key not in ("0.jpg", "4.jpg", "5.jpg")]
    assert bad == ["0.jpg", "4.jpg", "5.jpg"]
    assert [len(b) for b, _ in got] == [3, 3, 2]
    # batched reuses its buffer, so compare batch by batch as it comes
    seen = []
    for batch, x in pipeline.batched(items, mean, True, 3, lambda it, e: None, workers=2,
                                     lockstep=lockstep):
        want = np.concatenate([imaging.preprocess(it.path, mean, True) for it in batch])
        assert np.array_equal(x, want)
        seen += batch
    assert seen == good


def test_lockstep_hands_out_a_batch_only_once_the_last_is_taken(tmp_path):
    """In lockstep the workers get nothing while the consumer holds a batch (its forward
    pass), then the next batch at once; otherwise they work ahead into the free slots."""
    mean = V1  # v1's preprocessing (a Recipe)
    items = [Item(f"{i}.jpg", write_jpeg(tmp_path / f"{i}.jpg", seed=i)) for i in range(7)]
    for lockstep, ahead, then in ((3, 0, 2), (0, 3, 3)):
        pool = pipeline._Processes(mean, False, 2, 6)
        try:
            results = pool.ordered(items, lockstep)
            first_batch = [next(results) for _ in range(3)]
            for _, _, release in first_batch:
                release()
            assert len(pool.jobs) == ahead  # handed out and not yet taken
            item, crops, _ = next(results)  # the consumer comes back: the next batch goes out
            assert item.key == "3.jpg" and len(pool.jobs) == then  # lockstep: 4, 5 not 6
            assert np.array_equal(crops, imaging.preprocess(item.path, mean))
            assert [it.key for it, _, _ in results] == ["4.jpg", "5.jpg", "6.jpg"]
        finally:
            pool.close()


def test_lockstep_tops_up_a_batch_a_bad_image_left_short(tmp_path):
    """A bad image leaves the consumer's batch one short: only that one is handed out, so
    the next batch still starts after the forward pass, not during it."""
    mean = V1  # v1's preprocessing (a Recipe)
    items = [Item(f"{i}.jpg", write_jpeg(tmp_path / f"{i}.jpg", seed=i)) for i in range(7)]
    open(items[0].path, "wb").write(b"not an image")
    pool = pipeline._Processes(mean, False, 2, 6)
    try:
        results = pool.ordered(items, 3)
        first = [next(results) for _ in range(4)]  # the bad 0, then 1, 2 and the top-up 3
        assert isinstance(first[0][1], ImageError)
        assert [it.key for it, _, _ in first] == ["0.jpg", "1.jpg", "2.jpg", "3.jpg"]
        for _, _, release in first:
            release()
        assert len(pool.jobs) == 0  # the batch 1, 2, 3 is complete: nothing decodes beside it
        assert next(results)[0].key == "4.jpg" and len(pool.jobs) == 2
        assert [it.key for it, _, _ in results] == ["5.jpg", "6.jpg"]
    finally:
        pool.close()


def test_lockstep_is_chosen_when_the_engine_takes_every_core(monkeypatch):
    monkeypatch.setattr(pipeline, "usable_cores", lambda: 4)
    assert pipeline.decode_between_passes("cpu", 0)  # default --threads: every core
    assert pipeline.decode_between_passes("cpu", 4) and pipeline.decode_between_passes("cpu", 8)
    assert not pipeline.decode_between_passes("cpu", 2)  # cores left over: decode beside it
    assert not pipeline.decode_between_passes("gpu", 0)  # the forward pass is the GPU's
    monkeypatch.undo()
    # one worker per core in lockstep (the cores are idle then), half the cores otherwise
    assert pipeline.plan(100, None, 16, lockstep=True)[0] == min(8, cpu.usable_cores())
    assert pipeline.plan(100, None, 16)[0] == max(1, min(4, cpu.usable_cores() // 2))
    assert pipeline.plan(1, None, 16, lockstep=True)[0] == 1  # no idle workers


def test_a_crashing_decoder_costs_one_file(tmp_path):
    """A worker that dies (a decoder bug) fails the file in hand; the rest still come."""
    mean = V1  # v1's preprocessing (a Recipe)
    fifo = str(tmp_path / "hangs.jpg")  # a large PNG: the worker is still on it when killed
    big = np.zeros((4000, 6000, 3), np.uint8)
    big[::7] = 200
    imaging.cv2.imencode(".png", big)[1].tofile(fifo)
    paths = [write_jpeg(tmp_path / "a.jpg"), fifo, write_jpeg(tmp_path / "b.jpg", seed=2),
             write_jpeg(tmp_path / "c.jpg", seed=3)]
    items = [Item(os.path.basename(p), p) for p in paths]
    pool = pipeline._Processes(mean, False, 1, 4)
    try:
        results = pool.ordered(items)
        first, crops, release = next(results)
        assert first.key == "a.jpg" and crops.shape == (1, 3, 224, 224)
        release()
        pool.workers[0].proc.kill()
        rest = [(item.key, out) for item, out, release in results]
    finally:
        pool.close()
    assert [k for k, _ in rest] == ["hangs.jpg", "b.jpg", "c.jpg"]
    assert isinstance(rest[0][1], ImageError) and "decoder crashed" in str(rest[0][1])
    assert all(out.shape == (1, 3, 224, 224) for _, out in rest[1:])


def test_writer_keeps_order_and_raises_in_caller():
    seen, gate = [], threading.Event()

    def slow(i):
        gate.wait(5)
        seen.append(i)

    w = Writer(depth=2)
    w.submit(slow, 0)
    gate.set()
    for i in range(1, 20):
        w.submit(seen.append, i)
    w.close()
    assert seen == list(range(20))

    def boom():
        raise OSError(28, "No space left on device")

    w = Writer()
    w.submit(boom)
    with pytest.raises(OSError, match="No space"):
        for _ in range(100):
            w.submit(seen.append, -1)
        w.close()
    w.close(raise_error=False)


class Recorder:
    """Stands in for paddle.inference.Config: records the calls, so GPU choices can be
    checked on a CPU-only Paddle (which refuses them)."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *a, **k: self.calls.append((name, a, k))

    def names(self):
        return [c[0] for c in self.calls]

    def call(self, name):
        return next(c for c in self.calls if c[0] == name)


def _configure(**kw):
    options = dict(device="cpu", backend="openvino", threads=2, trt=False, precision="fp32",
                   max_batch=16, input_shape=(3, 224, 224), cache_dir="/c")
    options.update(kw)
    return engine.configure(Recorder(), **options)


def test_config_choices_cpu(monkeypatch):
    from paddle.inference import PrecisionType

    from resnet.common import cpu

    c = _configure()
    assert c.call("enable_openvino_engine")[1] == (PrecisionType.Float32,)  # fp32, explicitly
    assert c.call("set_cpu_math_library_num_threads")[1] == (2,)
    assert "enable_mkldnn" not in c.names() and "enable_use_gpu" not in c.names()
    c = _configure(precision="bf16")
    assert c.call("enable_openvino_engine")[1] == (PrecisionType.Bfloat16,)
    c = _configure(backend="onednn", threads=1)
    assert {"enable_mkldnn", "switch_ir_optim", "disable_gpu"} <= set(c.names())
    assert "enable_mkldnn_bfloat16" not in c.names()
    assert "enable_mkldnn_bfloat16" in _configure(backend="onednn", precision="bf16").names()
    # int8: OpenVINO's hint is what the ops outside int8 run in (the program's quantize pairs
    # make the rest int8): bf16 where the CPU has it natively, else fp32; oneDNN must be
    # told, or it runs the quantized program in fp32
    for flags, hint in ((frozenset({"avx2", "avx512_vnni", "avx512_bf16"}), "Bfloat16"),
                        (frozenset({"avx2", "avx512_vnni"}), "Float32"),
                        (frozenset({"avx2"}), "Float32")):
        monkeypatch.setattr(cpu, "cpu_flags", lambda f=flags: f)
        c = _configure(precision="int8")
        assert c.call("enable_openvino_engine")[1] == (getattr(PrecisionType, hint),)
        assert engine.int8_mode("openvino") == ("int8+bf16" if hint == "Bfloat16" else "int8")
        assert engine.int8_mode("onednn") == "int8"
    assert "enable_mkldnn_int8" in _configure(backend="onednn", precision="int8").names()
    assert "enable_mkldnn_int8" not in _configure(backend="onednn").names()


def test_config_choices_gpu():
    from paddle.inference import PrecisionType

    c = _configure(device="gpu")
    assert c.call("enable_use_gpu")[1][2] == PrecisionType.Float32
    assert "enable_tensorrt_engine" not in c.names()
    assert "enable_openvino_engine" not in c.names() and "enable_mkldnn" not in c.names()
    c = _configure(device="gpu", trt=True, precision="fp16", max_batch=20)
    assert c.call("enable_use_gpu")[1][2] == PrecisionType.Half
    trt = c.call("enable_tensorrt_engine")[2]
    assert trt["precision_mode"] == PrecisionType.Half and trt["max_batch_size"] == 20
    assert trt["use_static"] is True  # serialized into the cache folder
    lo, hi, opt = c.call("set_trt_dynamic_shape_info")[1]
    assert lo == {"image": [1, 3, 224, 224]} and hi == opt == {"image": [20, 3, 224, 224]}
    assert c.call("set_optim_cache_dir")[1] == ("/c",)
    c = _configure(device="gpu", trt=True, precision="int8")
    assert c.call("enable_use_gpu")[1][2] == PrecisionType.Float32
    trt = c.call("enable_tensorrt_engine")[2]
    assert trt["precision_mode"] == PrecisionType.Int8 and trt["use_calib_mode"] is False


@pytest.mark.parametrize("flags,message", [
    (["--use_gpu=1"], "--use_gpu=1 but this Paddle"),
    (["--trt"], "--trt needs the GPU"),
    (["--precision=fp16"], "--precision=fp16 needs the GPU"),
    (["--engine=dygraph", "--precision=bf16"], "--precision=bf16 needs --engine=inference"),
])
def test_option_errors(model50, tmp_path, flags, message):
    r = run_cli("--job=extract", f"--model={model50}", f"--data={EXAMPLES}/cat.jpg",
                f"--output_dir={tmp_path}", *(["--use_gpu=0"] if "--use_gpu=1" not in flags
                                              else []), *flags)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert message in r.stderr.strip().splitlines()[-1]


def test_check_options_directly(monkeypatch):
    engine.check_options("inference", "cpu", False, "fp32")
    with pytest.raises(ResnetError, match="bf16 is for the CPU"):
        engine.check_options("inference", "gpu", False, "bf16")
    with pytest.raises(ResnetError, match="has no CUDA support"):
        engine.check_options("inference", "cpu", True, "fp32")
    # a CUDA Paddle built without TensorRT: a clear word instead of Paddle's exception
    monkeypatch.setattr(engine.paddle.inference, "get_trt_compile_version", lambda: (0, 0, 0))
    with pytest.raises(ResnetError, match="built without TensorRT"):
        engine.check_options("inference", "gpu", True, "fp16")
    monkeypatch.setattr(engine.paddle.inference, "get_trt_compile_version", lambda: (8, 6, 1))
    engine.check_options("inference", "gpu", True, "fp16")
    with pytest.raises(ResnetError, match="int8 on the GPU runs through TensorRT: add --trt"):
        engine.check_options("inference", "gpu", False, "int8")
    engine.check_options("inference", "gpu", True, "int8")
    with pytest.raises(ResnetError, match="int8 needs --engine=inference"):
        engine.check_options("dygraph", "cpu", False, "int8")
    monkeypatch.setenv(engine.BACKEND_ENV, "tvm")
    with pytest.raises(ResnetError, match="choose one of openvino, onednn"):
        engine.cpu_backend()


class _SilentlyFailing:
    """A predictor whose run() does nothing, as Paddle Inference's OpenVINO step does when
    inference raises inside it (it logs and returns, the outputs keep their old values)."""

    def __init__(self, predictor):
        self._predictor = predictor

    def run(self):
        return None

    def __getattr__(self, name):
        return getattr(self._predictor, name)


class _Handle:
    def __init__(self, value):
        self.value = value

    def copy_to_cpu(self):
        return self.value.copy()


def test_engine_failures_are_caught_not_returned(model50):
    """Stale outputs of a silently failed run, NaN and missing rows each stop the run with
    one line; a batch equal to the previous one is not mistaken for a failure."""
    layers = ["res5_3_branch2c_bn", "output"]
    net = _engine(model50, 50, layers)
    batch = _batch()
    good = net.run(batch, layers)
    net.predictor = _SilentlyFailing(net.predictor)
    again = net.run(batch, layers)  # the same input: the old outputs are the right ones
    assert all(np.array_equal(good[k], again[k]) for k in layers)
    with pytest.raises(ResnetError, match=r"^engine failure: Paddle Inference .* returned the "
                       r"previous batch's outputs again for a different batch .*"
                       r"nothing of this batch was written; rerun with RESNET_CPU_BACKEND"):
        net.run(batch[::-1].copy(), layers)

    handles = net.outputs
    nan = good["output"].copy()
    nan[1, 7] = np.nan
    net.outputs = [handles[0], _Handle(nan)]
    with pytest.raises(ResnetError, match="returned NaN or infinite values at output"):
        net.run(batch, layers)
    net.outputs = [_Handle(good["res5_3_branch2c_bn"][:2]), handles[1]]
    with pytest.raises(ResnetError, match="returned 2 rows of res5_3_branch2c_bn for 3 images"):
        net.run(batch, layers)


def test_extract_stops_on_an_engine_failure_and_resumes(model50, tmp_path, monkeypatch, caplog):
    """The second batch's forward fails silently: extract stops with the engine's one line,
    keeps the first batch, and --resume writes exactly the uninterrupted run's rows."""
    data = tmp_path / "list.txt"
    photos = sorted(n for n in os.listdir(EXAMPLES) if n.endswith(".jpg"))[:4]
    data.write_text("".join(f"{os.path.join(EXAMPLES, n)}\n" for n in photos))
    opts = dict(layers=["output"], batch_size=2, use_gpu=False, workers=0, layer_num=50)
    resnet.extract(model50, str(data), output_dir=str(tmp_path / "clean"), **opts)

    real_run = engine.InferenceEngine.run
    calls = []

    def failing_second_batch(self, batch, outputs=None):
        calls.append(len(batch))
        if len(calls) == 2:
            self.predictor = _SilentlyFailing(self.predictor)
        return real_run(self, batch, outputs)

    monkeypatch.setattr(engine.InferenceEngine, "run", failing_second_batch)
    monkeypatch.setenv("RESNET_COMMIT_SECONDS", "0")  # a durable point after every batch
    out = tmp_path / "out"
    with pytest.raises(ResnetError, match="^engine failure: .* previous batch's outputs"):
        resnet.extract(model50, str(data), output_dir=str(out), **opts)
    monkeypatch.setattr(engine.InferenceEngine, "run", real_run)
    caplog.set_level("INFO", logger="resnet")
    resnet.extract(model50, str(data), output_dir=str(out), resume=True, **opts)
    assert f"resuming {out}: 2 of 4 list items already done" in caplog.text
    with resnet.load_features(str(out)) as got, resnet.load_features(str(tmp_path / "clean")) \
            as want:
        assert got.images == want.images and len(got.images) == 4
        assert rel_err(np.asarray(got["output"]), np.asarray(want["output"])) <= 1e-6


@pytest.mark.skipif(len(ALL_CPUS) < 2, reason="core claims need 2 CPUs; this machine has 1")
def test_core_claims_give_engines_other_cores_across_processes(monkeypatch):
    """Claims are machine-wide: a second claim, in this process or another, takes a core the
    first does not hold; with none free it shares; a closed claim is free again."""
    import subprocess
    import sys
    import uuid

    monkeypatch.setattr(cpu, "CLAIM_PREFIX", f"resnet-test-{uuid.uuid4().hex}-")
    other = ("import sys; from resnet.common import cpu; cpu.CLAIM_PREFIX = sys.argv[1]; "
             "print(cpu.claim_cores(int(sys.argv[2])).cores)")

    def in_child(count):
        r = subprocess.run([sys.executable, "-c", other, cpu.CLAIM_PREFIX, str(count)],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, PYTHONPATH=ROOT))
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    with every_cpu():
        cores = sorted(os.sched_getaffinity(0))
        first = cpu.claim_cores(1)
        assert first.cores == cores[:1]
        rest = in_child(len(cores) - 1)  # another process: every core but the held one
        assert rest == cores[1:]
        second = cpu.claim_cores(len(cores) - 1)
        assert second.cores == cores[1:]
        assert len(cpu.claim_cores(1).cores) == 1  # none free: shared, still one core
        first.close()
        assert in_child(1) == cores[:1]
        second.close()
        assert in_child(len(cores)) == cores


@pytest.mark.skipif(len(ALL_CPUS) < 2, reason="core claims need 2 CPUs; this machine has 1")
def test_openvino_engine_of_fewer_threads_is_made_on_cores_of_its_own(model50, monkeypatch):
    """OpenVINO pins an engine to the first cores of the thread creating it: a one-thread
    engine is created on a core this process claimed (the creating thread gets its cores
    back after), the process's later engines of as many threads share that claim, an engine
    in another process gets another core, and the values are the whole machine's."""
    import subprocess
    import sys
    import uuid

    from paddle import inference

    monkeypatch.setattr(cpu, "CLAIM_PREFIX", f"resnet-test-{uuid.uuid4().hex}-")
    monkeypatch.setattr(engine, "_claims", {})
    seen, real = [], inference.create_predictor

    def create_predictor(config):
        seen.append(sorted(os.sched_getaffinity(0)))
        return real(config)

    monkeypatch.setattr(inference, "create_predictor", create_predictor)
    spec = build(50)
    prefix = engine.compiled_model(model50, spec, ["output"], params.model_checksum(model50, spec))
    batch = _batch()
    other = ("import sys; from resnet.common import cpu; from resnet.runtime import engine; "
             "cpu.CLAIM_PREFIX = sys.argv[1]; "
             "print(engine.InferenceEngine(sys.argv[2], ['output'], threads=1, "
             "backend='openvino').claim.cores)")
    with every_cpu():
        cores = sorted(os.sched_getaffinity(0))
        whole = engine.InferenceEngine(prefix, ["output"], backend="openvino")
        a = engine.InferenceEngine(prefix, ["output"], threads=1, backend="openvino")
        b = engine.InferenceEngine(prefix, ["output"], threads=1, backend="openvino")
        dnn = engine.InferenceEngine(prefix, ["output"], threads=1, backend="onednn")
        assert sorted(os.sched_getaffinity(0)) == cores  # the thread got its cores back
        r = subprocess.run([sys.executable, "-c", other, cpu.CLAIM_PREFIX, prefix],
                           capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1]) == cores[1:2]  # another process: another core
    assert seen == [cores, cores[:1], cores[:1], cores]  # oneDNN does not pin: no claim
    assert (whole.claim, a.claim.cores, dnn.claim) == (None, cores[:1], None)
    assert b.claim is a.claim
    assert a.describe() == (f"Paddle Inference with OpenVINO on CPU (1 thread on core "
                            f"{cores[0]}, fp32)")
    want = whole.run(batch)["output"]
    for net in (a, b, dnn):
        assert rel_err(net.run(batch)["output"], want) <= 1e-5
