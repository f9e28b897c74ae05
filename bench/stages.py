"""Per-image cost of each stage of the single-crop v1 pipeline, in ms of one core, measured in
one run: reading the file, the header check (decompression-bomb guard), the JPEG decode
(full and --reduced_decode), the resize, the crop minus mean, and (with --engine) the
forward pass and the failure guard per image at batch 16.

    python bench/stages.py [--images 64] [--engine]
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

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench.throughput import make_images  # noqa: E402


def per_image(fn, items, repeats=3) -> float:
    """Median over repeats of the mean ms per item."""
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for item in items:
            fn(item)
        runs.append((time.perf_counter() - t) / len(items) * 1e3)
    return statistics.median(runs)


def stages(paths) -> dict[str, float]:
    from resnet.inputs import imaging
    from resnet.models.preprocessing import V1
    from resnet.models.resnet import INPUT_SIZE

    mean = np.asarray([103.939, 116.779, 123.68], np.float32).reshape(3, 1, 1)
    raws = [np.fromfile(p, dtype=np.uint8) for p in paths]
    sizes = [imaging._header_size(r) for r in raws]
    full = [cv2.imdecode(r, cv2.IMREAD_UNCHANGED) for r in raws]
    out = {}
    out["read file"] = per_image(lambda p: np.fromfile(p, dtype=np.uint8), paths)
    out["header check (Pillow)"] = per_image(imaging._header_size, raws)
    out["end-of-image check"] = per_image(lambda r: b"\xff\xd9" in r[-4096:].tobytes(), raws)
    out["JPEG decode, full"] = per_image(lambda r: cv2.imdecode(r, cv2.IMREAD_UNCHANGED), raws)

    def reduced(i):
        k = imaging._reduction(sizes[i], (INPUT_SIZE, INPUT_SIZE))
        flag = (cv2.IMREAD_UNCHANGED if k == 1
                else imaging._REDUCED_FLAGS[k] | cv2.IMREAD_IGNORE_ORIENTATION)
        return cv2.imdecode(raws[i], flag)
    out["JPEG decode, --reduced_decode"] = per_image(reduced, range(len(raws)))
    out["resize to 224x224 (full decode)"] = per_image(
        lambda img: imaging._resize(img, INPUT_SIZE, INPUT_SIZE), full)
    small = [imaging._resize(img, INPUT_SIZE, INPUT_SIZE) for img in full]
    buf = np.empty((1, 3, INPUT_SIZE, INPUT_SIZE), np.float32)
    out["crop minus mean"] = per_image(
        lambda img: imaging._minus_mean(buf[0], cv2.split(img), 0, 0, mean), small)
    out["whole preprocess (full decode)"] = per_image(lambda p: imaging.preprocess(p, V1), paths)
    return out


def engine_stages(work) -> dict[str, float]:
    from bench.engine_guard import measure

    _, fwd, guard = measure(work, rounds=6)
    return {"forward (batch 16, per image)": fwd * 1e3 / 16,
            "failure guard (per image)": guard * 1e3 / 16}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--engine", action="store_true", help="also time the forward pass")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as work:
        sets = {"300-640 px": (300, 640), "1200-2400 px": (1200, 2400)}
        table = {}
        for name, widths in sets.items():
            folder = os.path.join(work, name.split()[0])
            os.makedirs(folder)
            table[name] = stages(make_images(folder, args.images, widths))
        extra = engine_stages(work) if args.engine else {}
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "?")
    print(f"ms per image, one core ({cpu}); {args.images} JPEGs per size")
    print("| stage | " + " | ".join(table) + " |")
    print("|---|" + "---|" * len(table))
    for stage in next(iter(table.values())):
        print(f"| {stage} | " + " | ".join(f"{t[stage]:.3f}" for t in table.values()) + " |")
    for stage, ms in extra.items():
        print(f"| {stage} | {ms:.2f} | |")


if __name__ == "__main__":
    main()
