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


def measure(work: str, rounds: int = 20, batch: int = 16) -> tuple[str, float, float]:
    """(engine, median forward seconds, median guard seconds) per batch, the engine compiled
    into `work`; batches of two different inputs alternate, as in a run."""
    os.environ["RESNET_CACHE_DIR"] = os.path.join(work, "cache")
    from resnet.modelio import params
    from resnet.models import build
    from resnet.runtime import engine

    model, spec, layers = make_model(os.path.join(work, "model")), build(50), LAYERS.split(",")
    net = engine.create("inference", spec, None, layers, model,
                        params.model_checksum(model, spec), max_batch=batch)
    rng = np.random.default_rng(0)
    batches = [rng.uniform(-128, 128, (batch, 3, 224, 224)).astype(np.float32)
               for _ in range(2)]
    guard, timed = net._guard, {"forward": [], "guard": []}
    net._guard = lambda *a: None
    for r in range(rounds):
        x = batches[r % 2]
        t = time.perf_counter()
        out = net.run(x)
        timed["forward"].append(time.perf_counter() - t)
        t = time.perf_counter()
        guard(x, out)
        timed["guard"].append(time.perf_counter() - t)
    return (net.describe(), statistics.median(timed["forward"]),
            statistics.median(timed["guard"]))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as work:
        name, fwd, g = measure(work, args.rounds, args.batch)
    print(f"{name}, batch {args.batch}, {args.rounds} rounds (medians)")
    print(f"forward {fwd * 1e3:8.1f} ms   guard {g * 1e3:6.2f} ms   guard/forward {g / fwd:.2%}")


if __name__ == "__main__":
    main()
