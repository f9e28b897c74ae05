"""Bytes per image and extract speed for the output choices, measured in ONE run.

A seeded random ResNet-50 and JPEGs re-encoded from example/ (bench/throughput.py makes
both); each row runs the real CLI (`python -m resnet --job=extract`, compiled engine, cache
warmed first) and reports the bytes on disk per image and img/s over the CLI's whole run.
Random weights are not trained ones: trained features (sparser after ReLU) may compress
better; the uncompressed sizes are exact either way.

    python bench/sizes.py              # 200 images, a few minutes
    python bench/sizes.py --images 50  # quicker
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from throughput import make_workload  # noqa: E402

DEFAULT = "res5_3_branch2c_conv,res5_3_branch2c_bn"
BN = "--output_layer=res5_3_branch2c_bn"
ROWS = [  # (label, flags); hdf5 rows without --compression are uncompressed (the default)
    ("default layers, hdf5", [f"--output_layer={DEFAULT}"]),
    ("default layers, hdf5, lzf", [f"--output_layer={DEFAULT}", "--compression=lzf"]),
    ("default layers, hdf5, gzip", [f"--output_layer={DEFAULT}", "--compression=gzip"]),
    ("default layers, hdf5, float16", [f"--output_layer={DEFAULT}", "--dtype=float16"]),
    ("default layers, parquet, float16", [f"--output_layer={DEFAULT}", "--dtype=float16",
                                          "--format=parquet"]),
    ("default layers, pickle", [f"--output_layer={DEFAULT}", "--format=pickle"]),
    ("default layers, text", [f"--output_layer={DEFAULT}", "--format=text"]),
    ("avgpool, hdf5", ["--output_layer=avgpool"]),
    ("res5_3_branch2c_bn, hdf5", [BN]),
    ("res5_3_branch2c_bn --pool=avg, hdf5", [BN, "--pool=avg"]),
    ("res5_3_branch2c_bn, hdf5 (again)", [BN]),
    ("res5_3_branch2c_bn --pool=avg, hdf5 (again)", [BN, "--pool=avg"]),
    ("res5_3_branch2c_bn --pool=avg, hdf5, float16", [BN, "--pool=avg", "--dtype=float16"]),
    ("res5_3_branch2c_bn --pool=avg, hdf5, float16, gzip",
     [BN, "--pool=avg", "--dtype=float16", "--compression=gzip"]),
    ("res5_3_branch2c_bn --pool=avg, parquet", [BN, "--pool=avg", "--format=parquet"]),
    ("res5_3_branch2c_bn --pool=avg, parquet, float16",
     [BN, "--pool=avg", "--dtype=float16", "--format=parquet"]),
    ("res5_3_branch2c_bn --pool=avg, pickle, float16",
     [BN, "--pool=avg", "--dtype=float16", "--format=pickle"]),
    ("res5_3_branch2c_bn --pool=avg, text", [BN, "--pool=avg", "--format=text"]),
]


def run(model, data, out, flags, env):
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "resnet", "--job=extract", f"--model={model}",
                        f"--data={data}", f"--output_dir={out}", "--use_gpu=0", *flags],
                       capture_output=True, text=True, env=env)
    wall = time.monotonic() - start
    if r.returncode != 0:
        raise SystemExit(f"failed: {flags}: {r.stderr.strip().splitlines()[-1]}")
    m = re.search(r"extracted (\d+) images in ([\d.]+) s", r.stderr)
    n, seconds = int(m.group(1)), float(m.group(2))
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs
               if f not in ("manifest.json", "progress.json", "failed.txt"))
    return size / n, n / seconds, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="resnet-sizes-") as work:
        env = dict(os.environ, PYTHONPATH=ROOT, RESNET_CACHE_DIR=os.path.join(work, "cache"))
        model, paths, data = make_workload(work, args.images)
        warm = {}
        print(f"{args.images} images, ResNet-50 (random weights), compiled engine, batch 16\n")
        print("| output | bytes per image | KB per image | img/s |\n|---|---|---|---|")
        for i, (label, flags) in enumerate(ROWS):
            layers = next(f for f in flags if f.startswith("--output_layer"))
            key = (layers, "--pool=avg" in flags)
            if key not in warm:  # compile once per layer set, outside the timing
                run(model, paths[0], os.path.join(work, f"warm{i}"), flags, env)
                warm[key] = True
            per_image, rate, _ = run(model, data, os.path.join(work, f"out{i}"), flags, env)
            print(f"| {label} | {per_image:,.0f} | {per_image / 1000:,.1f} | {rate:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
