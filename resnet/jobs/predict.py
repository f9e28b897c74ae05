"""`--job=predict`: top-k classes per image (v1's `Label of <path> is: <index>` lines)."""
from __future__ import annotations

import contextlib
import csv
import logging
import os
import sys
import time

import numpy as np

from resnet.common.files import atomic_file
from resnet.errors import ResnetError
from resnet.jobs import job
from resnet.jobs.summary import Summary

log = logging.getLogger("resnet")
PREDICT_FAILED_NAME = "predict_failed.txt"


def top_k(probs: np.ndarray, k: int) -> list[tuple[int, float]]:
    order = np.argsort(-probs, kind="stable")[:k]
    return [(int(i), float(probs[i])) for i in order]


class _Accuracy:
    """top-1 / top-k hits over the images whose list gave a label."""

    def __init__(self):
        self.labelled = self.top1 = self.topk = 0

    def add(self, label, best) -> None:
        if label is not None:
            self.labelled += 1
            self.top1 += best[0][0] == label
            self.topk += label in [i for i, _ in best]


@job("predict", needs=("data", "model"), reads=(
    "arch", "layer_num", "variant", "labels_from_folders", "mean", "multi_crop", "output_dir",
    "use_gpu", "batch_size", "output_file", "top_k", "strict", "overwrite", "workers", "runner",
    "engine", "threads", "trt", "precision", "check", "calibration",
    "reduced_decode"), named_weights=True)
def run(config, collect: bool = False, out=None) -> Summary:
    """Print predictions to `out` (stdout); with `collect`, also return them in the Summary
    (the Python API: nothing printed)."""
    from resnet.jobs import _steps as steps
    from resnet.modelio.classes import class_name, imagenet_classes
    from resnet.outputs.failures import FailureLog
    from resnet.runners import RUNNERS

    runner = RUNNERS[config.runner](config)  # a runner for extract only refuses here
    plan = steps.plan(config, runner, layers=["output"])
    classes = imagenet_classes()
    count = plan.model.spec["output"].shape[0]
    if count != len(classes):  # the FID Inception's 1008 outputs are not ImageNet's order
        raise ResnetError(f"{plan.model.directory or plan.model.spec.arch}: its output has "
                          f"{count} classes, not the {len(classes)} ImageNet classes predict "
                          "names; extract its features instead (--job=extract)")
    if config.output_file and os.path.exists(config.output_file) and not config.overwrite:
        raise ResnetError(f"{config.output_file}: already exists; pass --overwrite to replace "
                          "it or choose another --output_file")
    model = plan.model.load()
    k = min(config.top_k, len(classes))
    accuracy, collected = _Accuracy(), [] if collect else None
    out = out if out is not None else (None if collect else sys.stdout)
    failed_path = os.path.join(config.output_dir or ".", PREDICT_FAILED_NAME)

    def on_batch(batch_items, result, _consumed):
        for item, probs in zip(batch_items, result["output"]):
            best = top_k(probs, k)
            if out is not None:
                print(f"Label of {item.key} is: {best[0][0]}", file=out)
                for rank, (idx, p) in enumerate(best, 1):
                    print(f"    {rank}. {idx:4d} {p:8.4f}  {class_name(idx)} ({classes[idx][0]})",
                          file=out)
            if collected is not None:
                collected.append((item.key, best))
            accuracy.add(item.label, best)
            if writer:
                writer.writerow([item.key] + [i for i, _ in best]
                                + [class_name(i) for i, _ in best]
                                + [f"{p:.6g}" for _, p in best])

    csv_file = writer = None
    with runner.streaming(model, plan.layers, plan.device, len(plan.items)) as runner, \
            contextlib.ExitStack() as publish:
        if config.output_file:  # whole when the run ends, never written through a link
            folder = os.path.dirname(os.path.abspath(config.output_file))
            try:
                os.makedirs(folder, exist_ok=True)
                csv_file = publish.enter_context(atomic_file(
                    config.output_file, "w", newline="", encoding="utf-8"))
            except OSError as e:
                raise ResnetError(f"{config.output_file}: cannot write ({e.strerror or e})") \
                    from None
            writer = csv.writer(csv_file)
            writer.writerow(["path"] + [f"index_{r}" for r in range(1, k + 1)]
                            + [f"name_{r}" for r in range(1, k + 1)]
                            + [f"prob_{r}" for r in range(1, k + 1)])
        # its own list, so an extract run's failed.txt in the same folder is never touched
        failures = FailureLog(failed_path) if config.output_dir else None
        start = time.monotonic()
        outcome = None
        try:
            outcome = runner.run(plan.items, on_batch, lambda item, reason: failures and
                                 failures.add(item.key, reason), "predict")
        finally:
            if failures:
                failures.close()
    seconds = time.monotonic() - start
    if accuracy.labelled:
        log.info("accuracy on %d labelled images: top-1 %.2f%%, top-%d %.2f%%",
                 accuracy.labelled, 100.0 * accuracy.top1 / accuracy.labelled, k,
                 100.0 * accuracy.topk / accuracy.labelled)
    steps.report("predicted", outcome.done, len(outcome.failed), seconds, config.output_file,
                 failed_path)
    files = [config.output_file] if config.output_file else []
    return Summary("predict", outcome.done, [(it.key, why) for it, why in outcome.failed],
                   len(outcome.failed), files, seconds, collected)
