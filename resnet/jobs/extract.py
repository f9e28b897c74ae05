"""`--job=extract`: the features of named layers for every image, written resumably."""
from __future__ import annotations

import logging
import os
import time

import numpy as np

from resnet.errors import ResnetError
from resnet.jobs import job
from resnet.jobs.summary import Summary

log = logging.getLogger("resnet")
#: seconds between durable points, overriding the format's own (1 s; Parquet 30 s)
COMMIT_ENV = "RESNET_COMMIT_SECONDS"


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
    "layer_num", "variant", "labels_from_folders", "mean", "multi_crop", "output_layer",
    "output_dir", "use_gpu", "batch_size", "format", "pool", "dtype", "compression",
    "no_space_check", "strict", "resume", "overwrite", "shard", "workers", "runner",
    "ray_address", "actors", "cpus_per_actor", "gpus_per_actor", "engine", "threads", "trt",
    "precision", "check", "calibration", "reduced_decode"))
def run(config) -> Summary:
    """Check the output folder can be written, then hold its lock (common/lock.py: one run
    per folder) for the whole run, before anything is read or compiled. The folder is made
    for the lock if missing, and removed again if the run leaves nothing in it."""
    from resnet.common.lock import folder_lock
    from resnet.outputs import FORMATS
    from resnet.outputs.base import check_writable

    out_dir = shard_dir(config.output_dir, config.shard)
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
    from resnet.outputs.base import existing_outputs, key_bytes, open_sink
    from resnet.runners import RUNNERS

    plan = steps.plan(config)
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
    if config.format == "hdf5":
        manifest["compression"] = config.compression
    if config.reduced_decode:  # other features than a full decode: never mixed by --resume
        manifest["decode"] = "reduced"
    if config.precision != "fp32":  # likewise features of another precision
        manifest["precision"] = config.precision
    parallel = RUNNERS[config.runner].parallel_writers
    if parallel:  # workers write fixed parts of the list (outputs/parts.py)
        from resnet.inputs.imaging import CROPS
        from resnet.models.graph import INPUT_SIZE
        from resnet.outputs import parts

        from resnet.outputs.base import read_manifest

        earlier = read_manifest(out_dir).get("part_rows") if config.resume else None
        manifest["part_rows"] = earlier or parts.plan(  # a resumed run keeps its parts
            len(items), CROPS if config.multi_crop else 1,
            getattr(mean, "crop", INPUT_SIZE), config.batch_size).rows
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
    if parallel:
        return _in_parts(config, plan, model, items, out_dir, manifest, shapes, meta)
    with steps.runner(config, plan, model, items) as runner:  # closes the decoders
        book = journal.Journal(out_dir, manifest, all_outputs(out_dir), config.resume,
                               config.overwrite)
        done = book.state["position"]
        if book.resuming:
            log.info("resuming %s: %d of %d list items already done", out_dir, done, len(items))
        start = time.monotonic()
        outcome, complete, dtype = None, False, np.dtype(config.dtype)
        saved = book.state["sink"] if book.resuming else None
        try:
            with open_sink(config.format, out_dir, shapes, meta, book.state["rows"],
                           saved) as sink:
                commit_every = float(os.environ.get(COMMIT_ENV, sink.commit_every))
                last_commit = [time.monotonic()]
                # where the last whole batch left the list and the failure count
                written = {"position": done, "whole": True, "failed": book.state["failed"]}

                def on_batch(batch_items, out, consumed):
                    written["whole"] = False
                    sink.write(batch_items,
                               {k: v.astype(dtype, copy=False) for k, v in out.items()})
                    if time.monotonic() - last_commit[0] >= commit_every:  # fsyncs: not always
                        sink.flush()
                        book.commit(consumed, sink.count, sink.state())
                        last_commit[0] = time.monotonic()
                    written.update(position=consumed, whole=True, failed=book.state["failed"])

                try:
                    outcome = runner.run(items, on_batch,
                                         lambda item, reason: book.fail(item.key, reason),
                                         "extract", skip=done)
                except ResnetError:  # e.g. --strict: keep the batches written before it
                    if (written["whole"] and written["position"] > book.state["position"]
                            and written["failed"] == book.state["failed"]):
                        sink.flush()
                        book.commit(written["position"], sink.count, sink.state())
                    raise
                sink.flush()
                book.commit(len(items), sink.count, sink.state())
            complete = True  # only once the sink is closed: its last file is whole and named
        finally:
            book.finish(complete)
    seconds = time.monotonic() - start
    steps.report("extracted", outcome.done, book.state["failed"], seconds, out_dir,
                 os.path.join(out_dir, journal.FAILED))
    files = sorted(os.path.join(out_dir, n) for n in existing_outputs(config.format, out_dir))
    space.report_written(files, book.state["rows"])
    return Summary("extract", outcome.done, [(it.key, why) for it, why in outcome.failed],
                   book.state["failed"], files, seconds)


def _in_parts(config, plan, model, items, out_dir, manifest, shapes, meta) -> Summary:
    """Extract with a runner whose workers write part files (outputs/parts.py), then join
    them into the format's files in list order; --resume redoes the parts not marked done."""
    from resnet.jobs import _steps as steps
    from resnet.outputs import journal, parts, space
    from resnet.outputs.base import existing_outputs, open_sink
    from resnet.runners import RUNNERS
    from resnet.runners.ray_data import PartJob, job_env
    from resnet.runtime.engine import cache_root

    part_plan = parts.PartPlan(len(items), manifest["part_rows"])
    store = parts.PartStore(out_dir, config.format, shapes, meta, part_plan)
    start = time.monotonic()
    written, failed, complete = 0, [], False
    with RUNNERS[config.runner](config) as runner:  # the cluster, until the parts are done
        manifest["cluster"] = runner.cluster
        book = journal.Journal(out_dir, manifest, all_outputs(out_dir), config.resume,
                               config.overwrite)
        finished = book.resuming and journal.progress(out_dir)["position"] == len(items)
        try:
            if not finished:
                store.prepare()
                done = store.done()
                todo = [k for k in range(part_plan.count) if k not in done]
                before = sum(part_plan.bounds(k)[1] - part_plan.bounds(k)[0] for k in done)
                if done:
                    log.info("resuming %s: %d of %d parts (%d of %d list items) already done",
                             out_dir, len(done), part_plan.count, before, len(items))
                job = PartJob(config, model.preprocessing, list(plan.layers), shapes, meta,
                              os.path.abspath(out_dir), part_plan, model.sha256,
                              runner.pool.threads,
                              dict(job_env(), RESNET_CACHE_DIR=os.path.abspath(cache_root())),
                              runner.pool.gpus > 0)
                if todo:
                    written, _ = runner.run_parts(items, todo, job, before)
        except BaseException:
            book.finish(False, discard_empty=False)  # parts already done stay for --resume
            raise
    try:
        if not finished:
            failed = [(items[i].key, why) for i, why in store.failures()]
            for key, reason in failed:
                book.fail(key, reason)
            if not store.final:  # e.g. HDF5: one writer, the parts streamed in list order
                with open_sink(config.format, out_dir, shapes, meta) as sink:
                    store.assemble(sink, items)
            book.commit(len(items), store.rows(), {})
        complete = True
    finally:
        book.finish(complete, discard_empty=False)
    if not finished:
        store.remove_stage()
    seconds = time.monotonic() - start
    steps.report("extracted", written, book.state["failed"], seconds, out_dir,
                 os.path.join(out_dir, journal.FAILED))
    files = sorted(os.path.join(out_dir, n) for n in existing_outputs(config.format, out_dir))
    space.report_written(files, book.state["rows"])
    return Summary("extract", written, failed, book.state["failed"], files, seconds)
