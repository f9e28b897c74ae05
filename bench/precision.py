"""fp32, bf16, int8 and --precision=auto side by side with ONNX Runtime fp32 and int8, in ONE
process: forward images/s at batch 16 and the feature error of each row against the fp32
dygraph reference on the calibration images.

The model is a seeded random network whose batch norms take their statistics from a probe
batch of real photos (tests/vgg_weights.seeded_weights; plain VGG: He-scaled random weights),
so each layer's activations are normalised as in a trained network: random statistics give
activation ranges no trained network has, and flatter int8 errors. A ResNet's residual
branches are scaled by --residual_scale (default 0.25): at 1 a random ResNet-50 is chaotic,
and the first line printed, fp32 against itself under input noise, shows how far apart its
features land for noise far below int8's. Calibration images are crops of the example photos
(the test suite's), preprocessed by the network's recipe.

Rows:
- engine fp32 / bf16: Paddle Inference (OpenVINO) on the compiled model;
- engine int8: the model --precision=int8 accepts (int8_levels: the first level within the
  bound), or the last level tried when none is, marked refused; on OpenVINO, the same model
  again with PTQ's signed activations (what the engine ran before its activations after
  ReLUs became unsigned), and on CPUs without VNNI the same model with 8-bit weights in the
  ops whose input is signed (what it ran before engine.narrow_int8);
- auto: what --precision=auto chose, with the speeds it measured;
- ONNX Runtime fp32: the compiled fp32 model converted by paddle2onnx;
- ONNX Runtime int8: the same ONNX file quantized by onnxruntime.quantization.quantize_static
  (QDQ, per-channel s8 weights, u8 activations, MinMax calibration on the same images);
- OpenVINO fp32 / int8 (when `pip install openvino nncf` is done): the same ONNX file run by
  OpenVINO itself, not through Paddle, in a child process (bench/openvino_rows.py; int8: NNCF's
  post-training quantization with its defaults on the same images; when the engine's int8 left
  ops out, NNCF again with the same ops ignored).

    python bench/precision.py                                  # ResNet-50 v1, avgpool,output
    python bench/precision.py --arch vgg16 --layers fc7,output
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]


def calibration_images(folder: str, recipe, n: int = 24) -> np.ndarray:
    """n crops of the example photos (flipped every other one), preprocessed by `recipe`."""
    import cv2

    from resnet.inputs import imaging

    examples = os.path.join(ROOT, "example")
    photos = [cv2.imread(os.path.join(examples, f)) for f in sorted(os.listdir(examples))
              if f.endswith(".jpg")]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        y, x = int(rng.integers(0, h // 4)), int(rng.integers(0, w // 4))
        crop = img[y:y + 3 * h // 4, x:x + 3 * w // 4]
        path = os.path.join(folder, f"c{i:02d}.jpg")
        cv2.imwrite(path, crop[:, ::-1] if i % 2 else crop)
        out.append(imaging.preprocess(path, recipe))
    return np.concatenate(out).astype(np.float32)


ROUNDS = 3  # timing rounds per row, interleaved with the other rows


def rate(run, x: np.ndarray, seconds: float = 8.0) -> float:
    """Images per second of run(x), over `seconds` after two warm-up calls."""
    run(x)
    run(x)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run(x)
        done += len(x)
    return done / (time.perf_counter() - start)


def outputs(run, images: np.ndarray, batch: int) -> list[np.ndarray]:
    parts = [run(images[i:i + batch]) for i in range(0, len(images), batch)]
    return [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]


def onnx_file(prefix: str, path: str) -> str:
    """The compiled fp32 model converted to ONNX by paddle2onnx (made once per bench run)."""
    import paddle2onnx

    if not os.path.exists(path):
        paddle2onnx.export(prefix + ".pdmodel", prefix + ".pdiparams", save_file=path,
                           opset_version=13, optimize_tool="onnxoptimizer")
    return path


def onnx_rows(report, prefix: str, images: np.ndarray, work: str) -> None:
    """ONNX Runtime on the compiled fp32 model converted by paddle2onnx, and on its static
    int8 quantization (QDQ, per-channel s8 weights, u8 activations, MinMax calibration on the
    same images)."""
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    from resnet.common import cpu

    onnx32, onnx8 = os.path.join(work, "fp32.onnx"), os.path.join(work, "int8.onnx")
    onnx_file(prefix, onnx32)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"image": images[i:i + 8]} for i in range(0, len(images), 8)])

        def get_next(self):
            return next(self.items, None)

    quantize_static(onnx32, onnx8, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    options = ort.SessionOptions()
    options.intra_op_num_threads = cpu.usable_cores()
    options.log_severity_level = 3
    for label, path in (("ONNX Runtime fp32", onnx32), ("ONNX Runtime int8 (QDQ)", onnx8)):
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        report(label, lambda b, s=session: s.run(None, {"image": b}))


def openvino_rows(report, onnx32: str, images: np.ndarray, work: str, batch: int,
                  keep: dict) -> None:
    """OpenVINO itself on the ONNX file, fp32 and NNCF int8, also with the ops of `keep`
    left out (bench/openvino_rows.py), in a child process; ImportError when openvino or nncf
    is not installed there."""
    import json
    import subprocess

    path, out = os.path.join(work, "images.npy"), os.path.join(work, "openvino.npz")
    np.save(path, images)
    with open(os.path.join(work, "keep.json"), "w") as f:
        json.dump(keep, f)
    child = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "openvino_rows.py"),
                              onnx32, path, out, str(batch), f.name], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    head = json.loads(child.stdout.readline() or '{"missing": "the child failed"}')
    if "missing" in head:
        child.wait()
        raise ImportError(head["missing"])
    got = np.load(out)

    def timer(i):
        def rate_there(seconds):
            child.stdin.write(f"{i} {seconds}\n")
            child.stdin.flush()
            return float(child.stdout.readline())
        return rate_there

    for i, label in enumerate(head["labels"]):
        outputs_i = [got[f"{i}_{k}"] for k in range(len(got.files) // len(head["labels"]))]
        report(label, got=outputs_i, timer=timer(i))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="resnet50_v1")
    p.add_argument("--layers", default="avgpool,output")
    p.add_argument("--seconds", type=float, default=9.0, help="of timing per row")
    p.add_argument("--residual_scale", type=float, default=0.25,
                   help="scale of each residual branch's output (ResNets; 1: as drawn)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from vgg_weights import seeded_weights, vgg_weights

    from resnet.common import cpu
    from resnet.modelio import params
    from resnet.models import build_arch
    from resnet.runtime import engine
    from resnet.runtime.network import Network

    layers = args.layers.split(",")
    spec = build_arch(args.arch)
    has_bn = any(n.op == "bn" for n in spec)
    values = (seeded_weights(args.arch, residual_scale=args.residual_scale) if has_bn
              else vgg_weights(args.arch))
    work = tempfile.mkdtemp(prefix="precision-bench-")
    os.environ["RESNET_CACHE_DIR"] = os.path.join(work, "cache")
    model = os.path.join(work, "model")
    os.makedirs(model)
    params.save_model(model, spec, values)
    sha = params.model_checksum(model, spec)
    from resnet.models.preprocessing import V1

    if spec.input_size != 224:
        sys.exit("bench/precision.py: 224-input architectures only (v1's preprocessing)")
    images = calibration_images(work, V1)
    batch = 16
    reference = Network(spec).load_params(values)
    want = reference.run(images, layers)
    print(f"{args.arch} at {args.layers}: {len(images)} calibration images, batch {batch}, "
          f"{cpu.cpu_name()} (int8: {cpu.int8_support()}, bf16: {cpu.bf16_support()})")
    residual = any(n.op == "addto" for n in spec)
    print(f"weights: seeded random{', BN statistics from 2 probe photos' if has_bn else ''}"
          f"{f', residual branches x{args.residual_scale}' if residual else ''}")
    rng = np.random.default_rng(0)
    floor = []
    for noise in (0.003, 0.01):
        noisy = images + noise * images.std() * rng.standard_normal(images.shape, np.float32)
        cos = engine.pooled_cosine(reference.run(noisy, layers[:1])[layers[0]], want[layers[0]])
        floor.append(f"{cos.min():.4f} at {noise:.1%}")
    print(f"fp32 under input noise (of the images' spread): pooled cosine min "
          f"{', '.join(floor)}\n")
    rows = []  # label, timer(seconds) -> img/s, error columns: timed together at the end

    def report(label, run=None, got=None, timer=None):
        """A row: `run` here (outputs and timing), or the outputs `got` and `timer` of one
        run elsewhere."""
        got = outputs(run, images, batch) if got is None else got
        timer = timer or (lambda seconds, run=run: rate(run, images[:batch], seconds))
        cos = engine.pooled_cosine(got[0], want[layers[0]])
        errs = " / ".join(f"{engine.rel_err(g, want[k]):.1e}" for g, k in zip(got, layers))
        rows.append((label, timer, f"{cos.min():.4f} / {np.median(cos):.4f} | {errs}"))

    def engine_run(net):
        return lambda b: [v for v in net.run(b, layers).values()]

    fp32 = engine.create("inference", spec, values, layers, model, sha)
    report("engine fp32", engine_run(fp32))
    if cpu.bf16_support():
        report("engine bf16", engine_run(engine.create("inference", spec, values, layers,
                                                       model, sha, precision="bf16",
                                                       calibration=images)))
    try:
        net = engine.create("inference", spec, values, layers, model, sha, precision="int8",
                            calibration=images)
        label = "engine int8"
    except Exception as e:  # refused: show the last level tried
        keep = engine.int8_levels(spec, layers)[-1]
        prefix = engine.compiled_model(model, spec, layers, sha, calibration=images, keep=keep,
                                       unsigned=engine.unsigned_int8(engine.cpu_backend()),
                                       narrow=engine.narrow_int8(engine.cpu_backend()))
        net = engine.InferenceEngine(prefix, layers, precision="int8")
        label = f"engine int8, {len(keep)} ops kept out (**refused**: {str(e)[:40]}...)"
    record = engine.cache.checks(os.path.dirname(net.prefix)).get(engine.int8_key(net.backend))
    kept = (record or {}).get("fp32_ops", 0)
    nodes = engine.quantizable_nodes(spec, layers)
    left_out = {"keep": list(next((k for k in engine.int8_levels(spec, layers)
                                   if len(k) == kept), ())),
                "channels": [n.shape[0] for n in nodes]}
    rest = "bf16" if engine.int8_mode(net.backend) == "int8+bf16" else "fp32"
    report(f"{label}{f', {kept} ops kept out' if kept and 'refused' not in label else ''}"
           f" (the rest of the network in {rest})", engine_run(net))
    if engine.unsigned_int8(net.backend):  # the same model with PTQ's signed activations
        signed = engine.compiled_model(model, spec, layers, sha, calibration=images,
                                       keep=tuple(left_out["keep"]))
        report("engine int8 as above, activations signed as PTQ makes them (before "
               "2026-12-04)", engine_run(engine.InferenceEngine(signed, layers,
                                                                 precision="int8")))
    if engine.narrow_int8(net.backend):  # the same model with the stem's 8-bit weights
        wide = engine.compiled_model(model, spec, layers, sha, calibration=images,
                                     keep=tuple(left_out["keep"]), unsigned=True)
        report("engine int8 as above, 8-bit weights where the input is signed (before "
               "2026-12-05)", engine_run(engine.InferenceEngine(wide, layers,
                                                                precision="int8")))
    auto = engine.create("inference", spec, values, layers, model, sha, precision="auto",
                         calibration=images)
    auto_line = (f"chose {auto.auto['precision']}; its own measurement, img/s: "
                 f"{auto.auto['img_per_s']}")
    try:
        onnx_rows(report, fp32.prefix, images, work)
    except ImportError:
        print("onnxruntime / paddle2onnx not installed: no ONNX Runtime rows\n")
    try:
        openvino_rows(report, onnx_file(fp32.prefix, os.path.join(work, "fp32.onnx")), images,
                      work, batch, left_out)
    except ImportError as e:
        print(f"no OpenVINO rows ({e}; pip install openvino nncf paddle2onnx)\n")
    speeds = [[] for _ in rows]
    for _ in range(ROUNDS):  # interleaved: a machine that slows down slows every row
        for i, (_, timer, _) in enumerate(rows):
            speeds[i].append(timer(args.seconds / ROUNDS))
    base = float(np.median(speeds[0]))
    print("| row | img/s | x fp32 engine | pooled cosine min / median | max rel. error |")
    print("|---|---|---|---|---|")
    for (label, _, errors), got in zip(rows, speeds):
        speed = float(np.median(got))
        print(f"| {label} | {speed:.1f} | {speed / base:.2f} | {errors} |")
    print(f"\n(auto: {auto_line})")


if __name__ == "__main__":
    main()
