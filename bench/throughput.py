"""End-to-end extract throughput: the dygraph baseline vs the compiled engine, in ONE run.

Everything is made here (no network): a seeded random ResNet-50 in v1 format and JPEGs of
varied sizes re-encoded from example/. Each configuration runs the real CLI in a child
process; img/s is the CLI's own figure for its image loop, start-up is the rest of the
child's wall time, peak RSS is the child's. When onnxruntime and paddle2onnx are installed,
ONNX Runtime's raw forward speed on the same compiled network is measured as a yardstick.

    python bench/throughput.py                       # the table
    python bench/throughput.py --images 100 2000     # how time and memory grow with N
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402

LAYERS = "res5_3_branch2c_bn,output"
CHILD = ("import resource, runpy, sys\n"
         "sys.argv = ['resnet'] + sys.argv[1:]\n"
         "try:\n    runpy.run_module('resnet', run_name='__main__')\n"
         "finally:\n    print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,"
         " file=sys.stderr)\n")


def make_images(folder: str, n: int) -> str:
    """n JPEGs (sizes 300..640 px, like photos) cycling over example/, and their list."""
    sources = [cv2.imread(p) for p in sorted(glob.glob(os.path.join(ROOT, "example", "*.jpg")))]
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        img = sources[i % len(sources)]
        w = int(rng.integers(300, 640))
        h = int(w * rng.uniform(0.6, 1.0))
        name = f"img{i:05d}.jpg"
        cv2.imwrite(os.path.join(folder, name), cv2.resize(img, (w, h)),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        names.append(name)
    path = os.path.join(folder, "list.txt")
    with open(path, "w") as f:
        f.write("\n".join(names) + "\n")
    return path


def make_model(folder: str) -> str:
    from resnet import params
    from resnet.spec import build

    spec = build(50)
    params.save_model(folder, spec, params.random_params(spec, seed=0))
    return folder


def run_extract(model, data, out, engine, batch, multi_crop, images):
    cmd = [sys.executable, "-c", CHILD, "--job=extract", f"--model={model}", f"--data={data}",
           f"--output_dir={out}", f"--output_layer={LAYERS}", "--use_gpu=0", "--overwrite",
           f"--engine={engine}", f"--batch_size={batch}", f"--multi_crop={int(multi_crop)}"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - start
    m = re.search(r"extracted (\d+) images in ([\d.]+) s", proc.stderr)
    if proc.returncode != 0 or not m or int(m.group(1)) != images:
        raise SystemExit(f"extract failed ({engine}, batch {batch}):\n{proc.stderr[-2000:]}")
    loop = float(m.group(2))
    rss = int(re.search(r"MAXRSS_KB (\d+)", proc.stderr).group(1)) / 1024
    return {"img_s": images / loop, "startup": wall - loop, "rss_mb": rss}


def onnx_raw(cache: str, batch: int, seconds: float = 3.0):
    """ONNX Runtime forward img/s on the compiled network, or None without onnxruntime."""
    try:
        import onnxruntime as ort
        import paddle2onnx
    except ImportError:
        return None
    prefix = glob.glob(os.path.join(cache, "*", "model.pdmodel"))[0][:-len(".pdmodel")]
    onnx_file = os.path.join(cache, "model.onnx")
    paddle2onnx.export(prefix + ".pdmodel", prefix + ".pdiparams", save_file=onnx_file,
                       opset_version=13, optimize_tool="onnxoptimizer")  # nothing downloaded
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(onnx_file, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).uniform(-100, 100, (batch, 3, 224, 224)).astype(np.float32)
    for _ in range(3):
        session.run(None, {name: x})  # warm-up
    start, done = time.monotonic(), 0
    while time.monotonic() - start < seconds:
        session.run(None, {name: x})
        done += batch
    return done / (time.monotonic() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, nargs="+", default=[160],
                    help="image counts for the engine runs (several: growth in time and RSS)")
    ap.add_argument("--baseline-images", type=int, default=24,
                    help="images for the slow dygraph baseline (default 24)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="resnet-bench-")
    os.environ["RESNET_CACHE_DIR"] = os.path.join(work, "cache")
    model = make_model(os.path.join(work, "model"))
    biggest = max(args.images + [args.baseline_images])
    os.makedirs(os.path.join(work, "images"))
    full_list = make_images(os.path.join(work, "images"), biggest)

    def sub_list(n):
        path = os.path.join(work, f"list{n}.txt")
        with open(full_list) as f:
            names = f.read().split()[:n]
        with open(path, "w") as f:
            f.write("\n".join(os.path.join(work, "images", x) for x in names) + "\n")
        return path

    print(f"machine: {os.cpu_count()} cores; ResNet-50, layers {LAYERS}, real JPEGs 300-640 px")
    rows = []
    # compile once so the engine rows show a warm cache, as a second run sees it
    run_extract(model, sub_list(16), os.path.join(work, "o"), "inference", 16, False, 16)
    for crop in (False, True):
        for batch in (1, 16):
            n = args.baseline_images if not crop else max(2, args.baseline_images // 6)
            base = run_extract(model, sub_list(n), os.path.join(work, "o"), "dygraph", batch,
                               crop, n)
            rows.append(("dygraph", crop, batch, n, base, base))
            for n in args.images:
                if crop:
                    n = max(2, n // 10)
                r = run_extract(model, sub_list(n), os.path.join(work, "o"), "inference", batch,
                                crop, n)
                rows.append(("inference", crop, batch, n, r, base))
    ort = {b: onnx_raw(os.environ["RESNET_CACHE_DIR"], b) for b in (1, 16)}
    print()
    print("| engine | crops | batch | images | img/s | x dygraph | x ORT raw | start-up s | "
          "peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for engine, crop, batch, n, r, base in rows:
        ref = ort.get(batch)
        per = r["img_s"] * (10 if crop else 1)  # crops/s against ORT's images/s
        print(f"| {engine} | {10 if crop else 1} | {batch} | {n} | {r['img_s']:.2f} | "
              f"{r['img_s'] / base['img_s']:.1f} | "
              f"{(per / ref) if ref else float('nan'):.2f} | {r['startup']:.1f} | "
              f"{r['rss_mb']:.0f} |")
    if ort[1]:
        print(f"\nONNX Runtime raw forward (random input, no decoding): batch 1 {ort[1]:.1f} img/s, "
              f"batch 16 {ort[16]:.1f} img/s. 'x ORT raw' compares crops/s for 10-crop rows.")
    else:
        print("\nONNX Runtime not installed (pip install onnxruntime paddle2onnx): no yardstick.")


if __name__ == "__main__":
    main()
