"""End-to-end extract throughput: the dygraph baseline vs the compiled engine, in ONE run.

Everything is made here (no network): a seeded random ResNet-50 in v1 format and JPEGs of
varied sizes re-encoded from example/. Each configuration runs the real CLI in a child
process (`python -m resnet --job=extract`, HDF5 output) and reports:
- img/s: images / the CLI's own time for its image loop (decode, forward, write);
- start-up: process start to the first batch handed to the writer (engine cache warm,
  except the row marked cold);
- peak RSS of the main process (its VmHWM at exit: free), and peak PSS of the process tree
  (main + decoding workers, shared pages counted once) sampled from /proc every 0.2 s. That
  sampling walks the processes' page tables and cost 7-8% of the throughput on 2 cores, so
  only the rows marked "memory sampled" (and the --images growth rows) do it; the others
  show "-" there.
ONNX Runtime's raw forward speed (random input, no decoding) on the same compiled network,
converted by paddle2onnx, is the yardstick when onnxruntime and paddle2onnx are installed,
as images over total time like the CLI's figure. Rows that trade exactness for speed (bf16, int8,
--reduced_decode on 1200-2400 px photos) carry their feature error against the exact row on
the same images: max relative error per layer and the cosine of the globally pooled
res5_3_branch2c_bn features (min / median). The headline row (single crop, batch 16)
runs --repeats times, each run paired with an ORT measurement taken just before it; the
median of the pairs' ratios is the figure (this machine's speed drifts within minutes).

    python bench/throughput.py                        # the table, a few minutes
    python bench/throughput.py --quick                # a smaller table, under 3 minutes
    python bench/throughput.py --images 100 2000      # how time and memory grow with N
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

from resnet.common import cpu  # noqa: E402

LAYERS = "res5_3_branch2c_bn,output"
SIZE = 224  # the network's input side (299 for Inception and Xception)
# the child: the real CLI, plus a note of when the first batch reached the writer
CHILD = ("import runpy, sys, time\n"
         "from resnet.runners import local\n"
         "_submit = local.Writer.submit\n"
         "def submit(self, fn, *a):\n"
         "    if not getattr(local, '_bench_first', None) and fn.__name__ == 'on_batch':\n"
         "        local._bench_first = time.time()\n"
         "        print('FIRST_BATCH_AT', repr(time.time()), file=sys.stderr, flush=True)\n"
         "    return _submit(self, fn, *a)\n"
         "local.Writer.submit = submit\n"
         "sys.argv = ['resnet'] + sys.argv[1:]\n"
         "try:\n    runpy.run_module('resnet', run_name='__main__')\n"
         "finally:\n"  # VmHWM, not ru_maxrss: that one keeps the forking parent's size
         "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
         "    print('MAXRSS_KB', hwm.split()[1], file=sys.stderr)\n")


def make_images(folder: str, n: int, widths=(300, 640)) -> list[str]:
    """n JPEGs (300..640 px wide, like web photos; or other `widths`) cycling over example/."""
    sources = [cv2.imread(p) for p in sorted(glob.glob(os.path.join(ROOT, "example", "*.jpg")))]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        img = sources[i % len(sources)]
        w = int(rng.integers(*widths))
        h = int(w * rng.uniform(0.6, 1.0))
        path = os.path.join(folder, f"img{i:05d}.jpg")
        cv2.imwrite(path, cv2.resize(img, (w, h)), [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def make_workload(work: str, n: int) -> tuple[str, list[str], str]:
    """(model dir, image paths, list file) of a benchmark in folder `work`."""
    model = make_model(os.path.join(work, "model"))
    os.makedirs(os.path.join(work, "img"))
    paths = make_images(os.path.join(work, "img"), n)
    data = os.path.join(work, "list.txt")
    with open(data, "w") as f:
        f.write("\n".join(paths) + "\n")
    return model, paths, data


def make_model(folder: str, arch: str = "resnet50_v1") -> str:
    """Seeded random weights of `arch`, made as the int8 tests make theirs (batch norms with
    statistics from probe photos, a ResNet's residual branches scaled down by 0.25:
    tests/vgg_weights.py), so the error columns of bf16, int8 and auto are not those of a
    chaotic network; a model.json names any architecture but the v1 zoo's (with v1's
    preprocessing at the network's input size: 299 for Inception and Xception)."""
    from dataclasses import replace

    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from vgg_weights import seeded_weights, vgg_weights

    from resnet.modelio import modelinfo, params
    from resnet.models import build_arch
    from resnet.models.preprocessing import V1

    spec = build_arch(arch)
    recipe = None if spec.input_size == V1.crop else replace(V1, crop=spec.input_size)
    values = (seeded_weights(arch, 0, recipe, residual_scale=0.25)
              if any(n.op == "bn" for n in spec) else vgg_weights(arch, 0))
    params.save_model(folder, spec, values)
    if arch != "resnet50_v1":
        modelinfo.write(folder, modelinfo.ModelInfo(None, None, recipe, arch=arch))
    return folder


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in glob.glob(f"/proc/{p}/task/*/children"):
            try:
                with open(task) as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return pids


def _pss_kb(pid: int) -> int:
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration, ValueError):
            pass
    return total


def run_extract(model, paths, work, engine="inference", batch=16, multi_crop=False, env=None,
                extra=(), out="out", memory=False):
    """One CLI run; its img/s, start-up seconds, peak RSS and (with `memory`, which slows the
    run) tree PSS in MB, output folder."""
    data = os.path.join(work, "list.txt")
    with open(data, "w") as f:
        f.write("\n".join(paths) + "\n")
    out = os.path.join(work, out)
    cmd = [sys.executable, "-c", CHILD, "--job=extract", f"--model={model}", f"--data={data}",
           f"--output_dir={out}", f"--output_layer={LAYERS}",
           "--use_gpu=0", "--overwrite", f"--engine={engine}", f"--batch_size={batch}",
           f"--multi_crop={int(multi_crop)}", *extra]
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=full_env)
    pss = 0
    while memory and proc.poll() is None:
        pss = max(pss, _pss_kb(proc.pid))
        time.sleep(0.2)
    _, err = proc.communicate()
    m = re.search(r"extracted (\d+) images in [\d.]+ s \(([\d.]+) img/s\)", err)
    if proc.returncode != 0 or not m or int(m.group(1)) != len(paths):
        raise SystemExit(f"extract failed ({engine}, batch {batch}):\n{err[-3000:]}")
    first = float(re.search(r"FIRST_BATCH_AT (\S+)", err).group(1))
    return {"img_s": float(m.group(2)), "startup": first - start,  # not images / rounded s
            "rss_mb": int(re.search(r"MAXRSS_KB (\d+)", err).group(1)) / 1024,
            "pss_mb": pss / 1024 if memory else None, "out": out}


def feature_error(out: str, ref: str) -> str:
    """'max relative error per layer; cosine of the globally pooled first layer, min /
    median over images' of run `out` against run `ref` (the same images)."""
    import resnet
    from resnet.runtime.engine import pooled_cosine, rel_err

    layers = LAYERS.split(",")
    with resnet.load_features(out) as got, resnet.load_features(ref) as want:
        got, want = ({k: np.asarray(f[k]) for k in layers} for f in (got, want))
    errs = " / ".join(f"{rel_err(got[k], want[k]):.1e}" for k in layers)
    cos = pooled_cosine(got[layers[0]], want[layers[0]])
    return f"{errs} | {cos.min():.4f} / {np.median(cos):.4f}"


def onnx_raw(cache: str, batch: int, seconds: float = 5.0):
    """ONNX Runtime forward img/s on the compiled network, or None without onnxruntime."""
    try:
        import onnxruntime as ort
        import paddle2onnx
    except ImportError:
        return None
    onnx_file = os.path.join(cache, "model.onnx")
    if not os.path.exists(onnx_file):
        prefix = glob.glob(os.path.join(cache, "*", "model.pdmodel"))[0][:-len(".pdmodel")]
        paddle2onnx.export(prefix + ".pdmodel", prefix + ".pdiparams", save_file=onnx_file,
                           opset_version=13, optimize_tool="onnxoptimizer")  # no downloads
    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    options.log_severity_level = 3  # paddle2onnx leaves unused initializers: ORT warns
    session = ort.InferenceSession(onnx_file, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).uniform(-100, 100, (batch, 3, SIZE, SIZE)).astype(np.float32)
    for _ in range(3):
        session.run(None, {name: x})  # warm-up
    # images over total time, as the CLI's own figure is (a median would drop the machine's
    # hiccups for ORT only)
    done, start = 0, time.monotonic()
    while time.monotonic() - start < seconds:
        session.run(None, {name: x})
        done += batch
    return done / (time.monotonic() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, nargs="+", default=[320],
                    help="image counts for the engine's single-crop batch-16 run (several: "
                         "how time and RSS grow, e.g. --images 100 2000); default 320")
    ap.add_argument("--baseline-images", type=int, default=24,
                    help="images for the slow dygraph baseline (default 24; 10-crop: a sixth)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="paired engine / ONNX Runtime runs for the headline ratio (default 3)")
    ap.add_argument("--skip-variants", action="store_true",
                    help="leave out the comparison rows (thread decoding, oneDNN, bf16)")
    ap.add_argument("--arch", default="resnet50_v1",
                    help="the architecture measured (default resnet50_v1, the v1 zoo's; "
                         "e.g. vgg16): random weights, its default features and output")
    ap.add_argument("--headline", action="store_true",
                    help="only the headline rows (cold cache, dygraph, the paired engine / "
                         "ONNX Runtime runs): the speed target, without the precision, "
                         "large-photo and memory rows")
    ap.add_argument("--precisions", action="store_true",
                    help="the headline rows (one paired run) and the precision rows alone "
                         "(bf16 where the CPU has it, int8, auto): each precision's speed-up "
                         "end to end, without the 10-crop, variant, large-photo and memory rows")
    ap.add_argument("--quick", action="store_true",
                    help="a smaller table in under 3 minutes: 64 images, one paired headline "
                         "run, no 10-crop or comparison rows (the error rows stay)")
    args = ap.parse_args()
    global LAYERS, SIZE
    if args.arch != "resnet50_v1":
        from resnet.models import build_arch

        LAYERS = ",".join(build_arch(args.arch).default_features() + ["output"])
        SIZE = build_arch(args.arch).input_size
    if args.quick:
        args.images, args.baseline_images, args.repeats = [64], 8, 1
        args.skip_variants = True
    if args.precisions:
        args.headline, args.repeats = True, 1
    work = tempfile.mkdtemp(prefix="resnet-bench-")
    cache = os.path.join(work, "cache")
    os.environ["RESNET_CACHE_DIR"] = cache
    model = make_model(os.path.join(work, "model"), args.arch)
    os.makedirs(os.path.join(work, "images"))
    paths = make_images(os.path.join(work, "images"), max(args.images + [160]))
    os.makedirs(os.path.join(work, "large"))
    large = make_images(os.path.join(work, "large"), 32 if args.quick else 96, (1200, 2400))
    print(f"machine: {len(os.sched_getaffinity(0))} cores ({cpu.cpu_name()}); {args.arch} "
          f"seeded weights, layers {LAYERS}, real JPEGs 300-640 px, HDF5 output", flush=True)

    rows = []  # (label, crops, batch, n, result)

    def row(label, crops, batch, n, images=None, ref=None, **kw):
        r = run_extract(model, (images or paths)[:n], work, batch=batch, multi_crop=crops == 10,
                        **kw)
        r["error"] = feature_error(r["out"], ref["out"]) if ref else ""
        rows.append((label, crops, batch, n, r))
        print(f"  {label}, {crops} crop(s), batch {batch}, {n} images: {r['img_s']:.2f} img/s",
              flush=True)
        return r

    n_main = args.images[0]
    n10 = max(16, n_main // 10)
    row("engine (cold cache)", 1, 16, 16)
    base = {}
    only = args.quick or args.headline  # the dygraph baseline of the headline row alone
    for crops in ((1,) if only else (1, 10)):
        for batch in ((16,) if only else (1, 16)):
            n = args.baseline_images if crops == 1 else max(2, args.baseline_images // 6)
            base[crops, batch] = row("dygraph", crops, batch, n, engine="dygraph")
            if (crops, batch) != (1, 16):  # the headline row is measured below, paired
                row("engine", crops, batch, n_main if crops == 1 else n10)
    # The headline (single crop, batch 16) against ONNX Runtime: this machine's speed drifts
    # by 10% within minutes, so each engine run is bracketed by ORT measurements taken just
    # before and just after it; its ratio is over their mean, and the median of the ratios
    # is the figure.
    ort = {1: onnx_raw(cache, 1), 16: []}
    pairs, headline = [], []
    raw = onnx_raw(cache, 16, 10.0)
    for _ in range(args.repeats):
        headline.append(row("engine", 1, 16, n_main, out="fp32")["img_s"])
        after = onnx_raw(cache, 16, 10.0)
        if raw and after:
            ort[16].append((raw + after) / 2)
            pairs.append(headline[-1] / ort[16][-1])
        raw = after
    ort[16] = float(np.median(ort[16])) if ort[16] else None
    fp32 = rows[-1][4]  # the last headline run: the reference of the precision rows
    if not args.headline and not args.skip_variants:
        row("engine, decoding threads", 1, 16, n_main, env={"RESNET_DECODER": "thread"})
        row("engine, 1 decoding process", 1, 16, n_main, extra=("--workers=1",))
        row("engine, oneDNN backend", 1, 16, n_main, env={"RESNET_CPU_BACKEND": "onednn"})
    if cpu.bf16_support() is not None and (args.precisions or not (args.headline or args.skip_variants)):
        row("engine, bf16 (opt-in)", 1, 16, n_main, extra=("--precision=bf16",),
            ref=fp32, out="bf16")
    memory = None
    if args.precisions or not args.headline:
        row("engine, int8 (opt-in; calibration: the first 64 images)", 1, 16, n_main,
            extra=("--precision=int8",), ref=fp32, out="int8")
        cores = len(os.sched_getaffinity(0))
        if cores > 1:  # without engine streams (an explicit --threads keeps one process)
            row(f"engine, int8 in one process (--threads={cores})", 1, 16, n_main,
                extra=("--precision=int8", f"--threads={cores}"), ref=fp32, out="int8_one")
            row("engine, int8, memory sampled", 1, 16, n_main, extra=("--precision=int8",),
                memory=True)
        row("engine, --precision=auto (the same calibration)", 1, 16, n_main,
            extra=("--precision=auto",), ref=fp32, out="auto")
    if not args.headline:
        # large photos (1200-2400 px): the full decode, then --reduced_decode against it
        full = row("engine, photos 1200-2400 px", 1, 16, len(large), images=large,
                   out="large")
        row("engine, photos 1200-2400 px, --reduced_decode", 1, 16, len(large),
            images=large, extra=("--reduced_decode",), ref=full, out="reduced")
        # memory: the headline configuration again, its process tree's PSS sampled (which
        # slows it)
        memory = row("engine, memory sampled", 1, 16, n_main, memory=True)
        for n in args.images[1:]:
            row("engine, memory sampled", 1, 16, n, memory=True)

    print()
    print("| engine | crops | batch | images | img/s | × dygraph | × ORT raw | start-up s | "
          "peak RSS MB | tree PSS MB | rel err res5 / output | pooled cos min / median |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, crops, batch, n, r in rows:
        b = base.get((crops, batch)) or base[crops, 16]
        ref = ort.get(batch) or ort.get(16)
        per = r["img_s"] * crops  # crops/s against ORT's images/s
        pss = "-" if r["pss_mb"] is None else f"{r['pss_mb']:.0f}"
        print(f"| {label} | {crops} | {batch} | {n} | {r['img_s']:.2f} | "
              f"{r['img_s'] / b['img_s']:.1f} | "
              f"{(per / ref) if ref else float('nan'):.2f} | {r['startup']:.1f} | "
              f"{r['rss_mb']:.0f} | {pss} | "
              f"{r['error'] or ' | '} |")
    speedup = np.median(headline) / base[1, 16]["img_s"]
    if ort[1]:
        print(f"\nONNX Runtime raw forward (random input, no decoding, "
              f"{len(os.sched_getaffinity(0))} threads): batch 1 {ort[1]:.1f} img/s, batch 16 "
              f"{ort[16]:.1f} img/s (median of {len(pairs)}). × ORT raw compares crops/s for "
              "the 10-crop rows.")
        print(f"Headline (end-to-end extract, single crop, batch 16, {n_main} images), each run "
              f"over the mean of the ORT figures taken just before and just after it: {', '.join(f'{p:.2f}' for p in pairs)}"
              f"; median {np.median(pairs):.2f}x ONNX Runtime raw, {speedup:.1f}x dygraph.")
    else:
        print("\nONNX Runtime not installed (pip install onnxruntime paddle2onnx): no yardstick; "
              f"headline {speedup:.1f}x dygraph.")
    precision = [(name, r["img_s"] / fp32["img_s"]) for _, _, _, _, r in rows
                 if (name := os.path.basename(r["out"])) in ("bf16", "int8", "auto")]
    if precision:
        print(f"End to end against the fp32 headline run ({fp32['img_s']:.2f} img/s): "
              + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in precision))
    if len(args.images) > 1 and memory:
        first, last = memory, rows[-1][4]
        print(f"Growth {args.images[0]} -> {args.images[-1]} images: peak RSS "
              f"{first['rss_mb']:.0f} -> {last['rss_mb']:.0f} MB "
              f"({100 * (last['rss_mb'] / first['rss_mb'] - 1):+.1f}%), tree PSS "
              f"{first['pss_mb']:.0f} -> {last['pss_mb']:.0f} MB, img/s "
              f"{first['img_s']:.1f} -> {last['img_s']:.1f}")


if __name__ == "__main__":
    main()
