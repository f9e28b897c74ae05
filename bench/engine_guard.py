"""What the engine's failure guard costs: a forward pass of the compiled ResNet-50 at batch 16
(res5_3_branch2c_bn,output) with and without InferenceEngine._guard, alternating in one run.

    python bench/engine_guard.py [--rounds 20]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from bench.throughput import LAYERS, make_model  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as work:
        os.environ["RESNET_CACHE_DIR"] = os.path.join(work, "cache")
        from resnet.modelio import params
        from resnet.models import build
        from resnet.runtime import engine

        model, spec, layers = make_model(work), build(50), LAYERS.split(",")
        net = engine.create("inference", spec, None, layers, model,
                            params.model_checksum(model, spec), max_batch=args.batch)
        rng = np.random.default_rng(0)
        batches = [rng.uniform(-128, 128, (args.batch, 3, 224, 224)).astype(np.float32)
                   for _ in range(2)]
        guard, timed = net._guard, {"forward": [], "guard": []}
        for r in range(args.rounds):
            batch = batches[r % 2]
            net._guard = lambda *a: None
            t = time.perf_counter()
            out = net.run(batch)
            timed["forward"].append(time.perf_counter() - t)
            t = time.perf_counter()
            guard(batch, out)
            timed["guard"].append(time.perf_counter() - t)
        fwd, g = statistics.median(timed["forward"]), statistics.median(timed["guard"])
        print(f"{net.describe()}, batch {args.batch}, {args.rounds} rounds (medians)")
        print(f"forward {fwd * 1e3:8.1f} ms   guard {g * 1e3:6.2f} ms   guard/forward "
              f"{g / fwd:.2%}")


if __name__ == "__main__":
    main()
