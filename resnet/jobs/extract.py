"""`--job=extract`: the features of named layers for every image, written resumably."""
from __future__ import annotations

import logging
import os

from resnet.jobs import job
from resnet.jobs.summary import Summary

log = logging.getLogger("resnet")


def all_outputs(folder: str) -> list[str]:
    """Every registered format's files in folder (--overwrite clears a folder of all of them)."""
    from resnet.outputs import FORMATS
    from resnet.outputs.base import existing_outputs

    return sorted({n for fmt in FORMATS.names() for n in existing_outputs(fmt, folder)})


def shard_slice(n: int, shard) -> slice:
    """The contiguous part of an n-item list that shard (i, count), 1-based, takes."""
    if shard is None:
        return slice(0, n)
    i, count = shard
    return slice((i - 1) * n // count, i * n // count)


def shard_dir(output_dir: str, shard) -> str:
    return os.path.join(output_dir, f"shard-{shard[0]}-of-{shard[1]}") if shard else output_dir


@job("extract", needs=("data", "model"), reads=(
    "arch", "layer_num", "variant", "labels_from_folders", "mean", "multi_crop", "output_layer",
    "output_dir", "use_gpu", "batch_size", "format", "pool", "dtype", "compression",
    "no_space_check", "strict", "resume", "overwrite", "shard", "workers", "runner",
    "ray_address", "actors", "cpus_per_actor", "gpus_per_actor", "engine", "threads", "trt",
    "precision", "check", "calibration", "reduced_decode"), named_weights=True)
def run(config) -> Summary:
    """Check the output folder can be written, then hold its lock (common/lock.py: one run
    per folder) for the whole run, before anything is read or compiled. The folder is made
    for the lock if missing, and removed again if the run leaves nothing in it."""
    from resnet.common.lock import folder_lock
    from resnet.outputs import FORMATS
    from resnet.outputs.base import check_writable

    out_dir = shard_dir(config.output_dir, config.shard)
    # the one check of --format: an unknown name is refused here, naming the registered ones
    FORMATS[config.format].check_available()  # e.g. pyarrow, before anything is loaded
    check_writable(out_dir)  # checked, never created, before the lock
    with folder_lock(out_dir, create=True):
        return _extract(config, out_dir)


def _extract(config, out_dir: str) -> Summary:
    from resnet.common.files import sha256_lines
    from resnet.inputs.lists import folder_classes
    from resnet.inputs.remote import absolute
    from resnet.jobs import _steps as steps
    from resnet.modelio import modelinfo
    from resnet.outputs import FORMATS, journal, space
    from resnet.outputs.base import existing_outputs, key_bytes
    from resnet.runners import RUNNERS
    from resnet.runners.base import Extraction

    runner = RUNNERS[config.runner](config)  # the one check of --runner; nothing started yet
    plan = steps.plan(config, runner)
    sink_type = FORMATS[config.format]
    outputs = all_outputs(out_dir)  # any format's: a folder holds one run
    journal.check_free(out_dir, outputs, config.resume, config.overwrite)
    model = plan.model.load()
    spec, mean = model.spec, model.preprocessing
    everything = len(plan.items)
    items = plan.items[shard_slice(everything, config.shard)]
    shapes = {name: spec.out_shape(name, config.pool) for name in plan.layers}
    manifest = {
        "layer_num": spec.layer_num, "layers": {k: list(v) for k, v in shapes.items()},
        "format": config.format, "model": os.path.abspath(config.model),
        "model_sha256": model.sha256,
        "data": absolute(config.data), "items": len(items),
        "list_sha256": sha256_lines(it.key for it in items),
        # the whole list's identity, so merge never joins shards of different lists
        "full_list_sha256": sha256_lines(it.key for it in plan.items),
        "full_items": everything,
        "shard": f"{config.shard[0]}/{config.shard[1]} of {everything}" if config.shard
        else None,
        "mean": modelinfo.describe_mean(mean, config.mean),
        "multi_crop": bool(config.multi_crop),
        "variant": spec.variant,
        "preprocessing": modelinfo.describe(mean, config.multi_crop),
        "pool": config.pool, "dtype": config.dtype, "runner": config.runner,
    }
    if spec.family.name != "resnet":  # ResNet manifests stay as they were (resume compares)
        manifest["arch"] = spec.arch
    if config.format == "hdf5":
        manifest["compression"] = config.compression
    if config.reduced_decode:  # other features than a full decode: never mixed by --resume
        manifest["decode"] = "reduced"
    if config.precision != "fp32":  # likewise features of another precision
        manifest["precision"] = config.precision
    manifest.update(runner.manifest(items, mean, out_dir))  # e.g. Ray's part sizes
    if config.labels_from_folders:
        manifest["classes"] = folder_classes(config.data)
    if config.resume:  # a run that cannot be resumed is refused before the engine compiles
        journal.check_resumable(out_dir, manifest, outputs)
    done_before = journal.progress(out_dir)["position"] if config.resume else 0
    space.check(out_dir, sink_type.bytes_per_row(shapes, config.dtype),
                len(items) - done_before, config.no_space_check)
    meta = {k: manifest[k] for k in ("layer_num", "model", "mean", "multi_crop", "format",
                                     "classes", "pool", "dtype", "compression")
            if k in manifest}
    meta["key_bytes"] = key_bytes(items)
    done = runner.extract(Extraction(config.output_settings, model, plan.layers, plan.device,
                                     items, out_dir, manifest, shapes, meta,
                                     lambda: all_outputs(out_dir)))
    steps.report("extracted", done.written, done.failed_total, done.seconds, out_dir,
                 os.path.join(out_dir, journal.FAILED))
    files = sorted(os.path.join(out_dir, n) for n in existing_outputs(config.format, out_dir))
    space.report_written(files, done.rows)
    return Summary("extract", done.written, done.failed, done.failed_total, files, done.seconds)
