"""Engines of fewer threads than cores, side by side in separate processes (several Ray actors
on a node, shard runs with --threads): OpenVINO pins each engine to the first cores of the
thread that creates it, so without core claims they all share the first cores. Measured in
ONE run, forward only (no decoding), alternating rounds:

- "first cores": each process creates its engine on its first T cores, as OpenVINO does left
  alone (the engine's claim replaced by the first cores, unclaimed);
- "claimed": as the engine runs them (resnet.common.cpu.claim_cores: other cores first).

    python bench/core_claims.py                 # 2 processes x 1 thread, ResNet-50, fp32
    python bench/core_claims.py --procs 4 --threads 2 --precision int8
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CHILD = """
import sys, time, numpy as np
from resnet.common import cpu
from resnet.runtime import engine
prefix, threads, precision, mode, seconds = sys.argv[1:6]
if mode == "first":
    cpu.claim_cores = lambda n: cpu.CoreClaim(sorted(cpu.os.sched_getaffinity(0))[:n], [])
net = engine.InferenceEngine(prefix, ["output"], threads=int(threads), precision=precision,
                             backend="openvino")
x = np.random.default_rng(0).random((16, 3, 224, 224), np.float32)
net.run(x)
print("ready", flush=True)
sys.stdin.readline()  # every process starts timing together
start, n = time.perf_counter(), 0
while time.perf_counter() - start < float(seconds):
    net.run(x)
    n += len(x)
print(n / (time.perf_counter() - start), net.describe(), flush=True)
"""


def round_(prefix: str, args, mode: str) -> tuple[float, list[str]]:
    env = dict(os.environ, PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, prefix, str(args.threads),
                               args.precision, mode, str(args.seconds)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(args.procs)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    rates, how = [], []
    for p in procs:
        rate, _, described = p.stdout.readline().partition(" ")
        rates.append(float(rate))
        how.append(described.strip())
        p.wait()
    return sum(rates), how


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    if args.procs * args.threads > cores or args.threads >= cores:
        ap.error(f"{args.procs} x {args.threads} threads do not fit this machine's {cores} "
                 "cores with fewer threads than cores per engine")
    from throughput import make_model

    from resnet.models import build_arch
    from resnet.modelio import params
    from resnet.runtime import engine

    with tempfile.TemporaryDirectory(prefix="resnet-bench-claims-") as work:
        os.environ["RESNET_CACHE_DIR"] = os.path.join(work, "cache")
        model = make_model(os.path.join(work, "model"))
        spec = build_arch("resnet50_v1")
        prefix = engine.compiled_model(model, spec, ["output"],
                                       params.model_checksum(model, spec))
        rows = {"first cores": [], "claimed": []}
        for _ in range(args.repeat):
            for label, mode in (("first cores", "first"), ("claimed", "claimed")):
                total, how = round_(prefix, args, mode)
                rows[label].append(total)
                print(f"  {label}: {total:.1f} img/s ({'; '.join(how)})", flush=True)
    first, claimed = (statistics.median(rows[k]) for k in rows)
    print(f"\n{args.procs} processes x {args.threads} thread(s), ResNet-50 {args.precision}, "
          f"batch 16, {cores} cores, medians of {args.repeat} alternating rounds\n")
    print("| engines made on | img/s, all processes | x first cores |\n|---|---|---|")
    print(f"| the first cores (OpenVINO left alone) | {first:.1f} | 1.00 |")
    print(f"| claimed cores | {claimed:.1f} | {claimed / first:.2f} |")


if __name__ == "__main__":
    main()
