"""--runner=ray against the local runner on this machine, measured in ONE run, and what the
measured rates mean for 10M images on GPU nodes.

Both runners run the real CLI on the same list (ResNet-50, random weights, compiled engine,
cache warmed first), alternating local / ray `--repeat` times; medians are compared:

- end-to-end: the command's wall time, start-up included (Ray: starting a local Ray, the
  engine actor's process and imports);
- steady: images per second once parts flow (Ray: from the first part file's time to the
  last's; local: the job's own img/s, which starts after its engine is built);
- start-up: Ray's wall time minus its images at its steady rate.

Ray runs inside a private network namespace when `unshare -n` works (root), so the local
cluster binds to loopback only. The 10M projection takes the measured decode cost per image
and Ray's measured start-up; the GPU's own rate and price are assumptions you pass in.

    python bench/ray_scale.py                  # 400 images, ~3 minutes on 2 cores
    python bench/ray_scale.py --images 1200 --repeat 1
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from throughput import make_workload  # noqa: E402

FLAGS = ["--output_layer=res5_3_branch2c_bn", "--pool=avg", "--format=parquet", "--use_gpu=0"]
RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


def netns_prefix() -> list[str]:
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    if probe.returncode != 0:
        print("note: no private network namespace here (unshare -n failed); Ray binds to "
              "this host's address")
        return []
    return ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]


def extract(prefix, model, data, out, env, *extra) -> tuple[float, str]:
    start = time.monotonic()
    r = subprocess.run(prefix + [sys.executable, "-m", "resnet", "--job=extract",
                                 f"--model={model}", f"--data={data}", f"--output_dir={out}",
                                 "--overwrite", *FLAGS, *extra],
                       capture_output=True, text=True, env=env)
    wall = time.monotonic() - start
    if r.returncode != 0:
        raise SystemExit(f"failed ({' '.join(extra)}): {r.stderr.strip()[-2000:]}")
    return wall, r.stderr


def steady_rate(out: str, rows_per_part: int) -> float:
    """Images per second between the first and the last part file's completion."""
    times = sorted(os.path.getmtime(p) for p in
                   glob.glob(os.path.join(out, "features.parquet", "part-*.parquet")))
    if len(times) < 3:
        return float("nan")
    return (len(times) - 1) * rows_per_part / (times[-1] - times[0])


def decode_ms(paths: list[str]) -> float:
    """Milliseconds of one core per image for decoding and single-crop preprocessing."""
    from resnet.inputs.decoding import crops_or_error
    from resnet.models.preprocessing import V1

    start = time.process_time()
    for p in paths:
        crops_or_error(p, V1, False)
    return 1000 * (time.process_time() - start) / len(paths)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--gpu_rate", type=float, default=2000.0,
                    help="ASSUMED img/s of one GPU actor (ResNet-50, fp16, large batches)")
    ap.add_argument("--gpu_hour", type=float, default=2.5, help="ASSUMED $ per GPU-hour")
    ap.add_argument("--node_gpus", type=int, default=8)
    ap.add_argument("--node_cpus", type=int, default=96)
    args = ap.parse_args()
    if args.images < 128:
        ap.error("--images must be at least 128: the steady rate needs several parts of 32")
    prefix = netns_prefix()
    with tempfile.TemporaryDirectory(prefix="resnet-ray-") as work:
        env = dict(os.environ, PYTHONPATH=ROOT, RESNET_CACHE_DIR=os.path.join(work, "cache"),
                   **RAY_ENV)
        model, paths, data = make_workload(work, args.images)
        extract(prefix, model, paths[0], os.path.join(work, "warm"), env)  # compile once
        local, ray, ray_steady, local_steady, connect, rows = [], [], [], [], [], 0
        for _ in range(args.repeat):
            wall, err = extract(prefix, model, data, os.path.join(work, "local"), env)
            local.append(wall)
            local_steady.append(float(re.search(r"extracted \d+ images in [\d.]+ s "
                                                r"\(([\d.]+) img/s\)", err).group(1)))
            out = os.path.join(work, "ray")
            wall, err = extract(prefix, model, data, out, env, "--runner=ray")
            ray.append(wall)
            connect.append(float(re.search(r"\(([\d.]+) s to connect\)", err).group(1)))
            with open(os.path.join(out, "manifest.json")) as f:
                rows = json.load(f)["part_rows"]
            ray_steady.append(steady_rate(out, rows))
        cost = decode_ms(paths[:100])
    l_wall, r_wall = statistics.median(local), statistics.median(ray)
    l_rate, r_rate = statistics.median(local_steady), statistics.median(ray_steady)
    startup = r_wall - args.images / r_rate
    l_startup = l_wall - args.images / l_rate
    print(f"{args.images} images, ResNet-50, res5_3_branch2c_bn --pool=avg, Parquet, "
          f"{os.cpu_count()} CPUs, {args.repeat} alternating runs each (medians)\n")
    print("| runner | wall s (end-to-end) | steady img/s | start-up s |\n|---|---|---|---|")
    print(f"| local | {l_wall:.1f} | {l_rate:.1f} | {l_startup:.1f} |")
    print(f"| ray (local Ray, 1 actor, parts of {rows}) | {r_wall:.1f} | {r_rate:.1f} | "
          f"{startup:.1f} (of which connecting {statistics.median(connect):.1f}) |")
    print(f"\nray / local: end-to-end {l_wall / r_wall:.2f}x, steady {r_rate / l_rate:.2f}x")
    slope = 1 / l_rate - 0.85 / r_rate
    if slope > 0:
        need = max(0.0, (0.85 * startup - l_startup) / slope)
        print(f"end-to-end reaches 0.85x from about {need:,.0f} images (fixed start-up "
              f"{startup:.1f} s vs {l_startup:.1f} s, amortised at these steady rates)")
    print(f"decode + single-crop preprocessing: {cost:.2f} ms of one core per image "
          f"({1000 / cost:,.0f} img/s per core)")
    # 10M images on GPU nodes: each node runs one actor per GPU; its other cores decode
    decode_per_node = (args.node_cpus - args.node_gpus) * 1000 / cost
    gpu_per_node = args.node_gpus * args.gpu_rate
    node_rate = min(decode_per_node, gpu_per_node)
    bound = "decode CPUs" if decode_per_node < gpu_per_node else "GPUs"
    print(f"\n10M images, nodes of {args.node_gpus} GPUs + {args.node_cpus} CPUs, ASSUMED "
          f"{args.gpu_rate:,.0f} img/s per GPU and ${args.gpu_hour}/GPU-hour; decode measured "
          f"here; start-up {startup:.0f} s once:")
    print("| nodes | img/s | hours | $ | bound by |\n|---|---|---|---|---|")
    for nodes in (1, 2, 4, 8, 16):
        rate = nodes * node_rate
        hours = (10e6 / rate + startup) / 3600
        print(f"| {nodes} | {rate:,.0f} | {hours:.2f} | {hours * nodes * args.node_gpus * args.gpu_hour:,.0f}"
              f" | {bound} |")
    need_cpus = args.gpu_rate * cost / 1000
    print(f"\nOne GPU at {args.gpu_rate:,.0f} img/s needs {need_cpus:.1f} cores of decoding at "
          f"{cost:.2f} ms/img: the bottleneck moves to decode CPUs below that many cores per GPU.")


if __name__ == "__main__":
    main()
