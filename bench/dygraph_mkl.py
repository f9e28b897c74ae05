"""The dygraph network (--engine=dygraph, and the fp32 reference of every check and int8/bf16
measurement) with MKL left to itself against MKL told to take its AVX2 kernels on an AMD CPU
(resnet.runtime.paddle_env.mkl_cpu_type), measured in ONE run: child processes, alternating,
each on one core.

The baseline child makes MKL's first call before the package is imported, so MKL has chosen
its kernels before the package's setting exists; the other child imports the package first,
as every run does. Both print the max relative difference of their outputs against the first
baseline's.

    python bench/dygraph_mkl.py                    # ResNet-50, batch 4, 3 rounds
    python bench/dygraph_mkl.py --arch vgg16 --rounds 2
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import os, sys, time
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
arch, batch, reps, mode, save = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
import numpy as np
if mode == "mkl alone":
    import paddle
    paddle.matmul(paddle.ones([8, 8]), paddle.ones([8, 8]))  # MKL chooses its kernels now
from resnet.models import build_arch
from resnet.modelio import params
from resnet.runtime.network import Network
spec = build_arch(arch)
net = Network(spec).load_params(params.random_params(spec, seed=1))
x = np.random.default_rng(0).random((batch, 3, spec.input_size, spec.input_size), np.float32)
out = net.run(x, ["output"])["output"]
start = time.perf_counter()
for _ in range(reps):
    net.run(x, ["output"])
ms = (time.perf_counter() - start) / (reps * batch) * 1000
if not os.path.exists(save):
    np.save(save, out)
want = np.load(save)
print(ms, float(np.abs(out - want).max() / np.abs(want).max()), os.environ.get("MKL_DEBUG_CPU_TYPE"))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet50_v1")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, ROOT)
    from resnet.common import cpu

    env = {k: v for k, v in os.environ.items() if k != "MKL_DEBUG_CPU_TYPE"}
    env["PYTHONPATH"] = ROOT
    rows = {"mkl alone": [], "as the package runs it": []}
    with tempfile.TemporaryDirectory(prefix="resnet-bench-mkl-") as work:
        save = os.path.join(work, "want.npy")
        for _ in range(args.rounds):
            for mode in rows:
                r = subprocess.run([sys.executable, "-c", CHILD, args.arch, str(args.batch),
                                    str(args.reps), mode, save], capture_output=True, text=True,
                                   env=env, check=True)
                ms, diff, setting = r.stdout.split()
                rows[mode].append((float(ms), float(diff), setting))
                print(f"  {mode}: {float(ms):.1f} ms/img (max rel diff {float(diff):.1e})",
                      flush=True)
    print(f"\n{args.arch} dygraph forward, batch {args.batch}, one core of {cpu.cpu_name()} "
          f"({cpu.cpu_vendor()}), medians of {args.rounds} alternating rounds\n")
    print("| MKL | ms/img | x mkl alone | max rel diff vs mkl alone |\n|---|---|---|---|")
    base = statistics.median(ms for ms, _, _ in rows["mkl alone"])
    for mode, got in rows.items():
        ms = statistics.median(m for m, _, _ in got)
        how = ("its own choice, made before the setting" if mode == "mkl alone"
               else f"MKL_DEBUG_CPU_TYPE={got[0][2]}")
        print(f"| {mode} ({how}) | {ms:.1f} | {base / ms:.2f} | "
              f"{max(d for _, d, _ in got):.1e} |")


if __name__ == "__main__":
    main()
