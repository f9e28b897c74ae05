"""The extract and predict jobs: list -> decode -> batches -> network -> sink, with bad images
reported, skipped and listed, never costing the good ones."""
from __future__ import annotations

import csv
import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np

from . import demo, engine, journal, modelinfo, params as params_io, pipeline
from .classes import class_name, imagenet_classes
from .errors import ResnetError
from .imaging import CROPS
from .inputs import collect, folder_classes
from .paddle_env import paddle, select_device
from .progress import Progress
from .sinks import check_writable, existing_outputs, key_bytes, open_sink

log = logging.getLogger("resnet")
FAILED_NAME = journal.FAILED
PREDICT_FAILED_NAME = "predict_failed.txt"
EXIT_SKIPPED = 3  # some images were skipped; everything else was written
COMMIT_EVERY = 1.0  # seconds between durable points (flush, fsync, progress.json)


@dataclass
class Outcome:
    done: int = 0
    failed: list = field(default_factory=list)  # (item, reason)

    @property
    def exit_code(self) -> int:
        return EXIT_SKIPPED if self.failed else 0


def _setup(args):
    """The cheap checks, before any output or model file is touched: device, depth and
    variant, layers, inputs, preprocessing. Returns (device, spec, layers, items, mean)."""
    device = select_device(args.use_gpu)
    spec, info = modelinfo.resolve(args)  # model.json's depth, variant, recipe; flags win
    log.info("running ResNet-%d%s on %s (paddle %s)", spec.layer_num,
             "" if spec.variant == "v1" else f" ({spec.variant})", device.upper(),
             paddle.__version__)
    engine.check_options(args.engine, device, args.trt, args.precision)
    layers = spec.check_layers((args.output_layer or ",".join(spec.default_features())).split(","))
    items = collect(args.data, getattr(args, "labels_from_folders", False))
    mean = modelinfo.preprocessing(info, args.mean)
    return device, spec, layers, items, mean


def _load(args, spec):
    """The model's parameters (every file validated) and their checksum."""
    values = params_io.load_model(args.model, spec)
    if demo.is_demo(args.model):
        log.warning(demo.WARNING)
    return values, journal.model_checksum(args.model, [n for n, _ in spec.param_files()])


def _engine(args, device, spec, layers, items, mean, values, sha256):
    """Decoding workers started, then the engine built (compiled and checked on first use)."""
    pipeline.prestart(mean, args.multi_crop, args.batch_size, args.workers, len(items))
    return engine.create(args.engine, spec, values, layers, args.model, sha256, device,
                         args.threads, args.trt, args.precision,
                         max_batch=max(args.batch_size, CROPS if args.multi_crop else 1),
                         check=args.check)


def _run(args, net, layers, items, mean, on_batch, on_fail, desc, skip=0):
    """Feed items[skip:] through the network, in order, batch by batch.

    Calls on_batch(batch_items, outputs, consumed) after each batch, where `consumed` counts
    the list items (good and bad) taken so far, and on_fail(item, reason) for each bad image.
    """
    outcome = Outcome()
    progress = Progress(len(items), desc, initial=skip)
    crops = CROPS if args.multi_crop else 1

    def on_error(item, err):
        if args.strict:
            raise ResnetError(f"{err} (stopped: --strict)")
        log.warning("skipped %s", err)
        outcome.failed.append((item, str(err)))
        writer.submit(on_fail, item, str(err))  # in list order with the batches' writes
        progress.update(1)

    writer = pipeline.Writer()  # sinks on their own thread: the engine never waits on disk
    try:
        for batch, x in pipeline.batched(items[skip:], mean, args.multi_crop, args.batch_size,
                                         on_error, workers=args.workers):
            out = _forward(net, x, layers, max(args.batch_size, crops))
            if crops > 1:
                out = {k: v.reshape(len(batch), crops, *v.shape[1:]).mean(axis=1)
                       for k, v in out.items()}
            outcome.done += len(batch)
            writer.submit(on_batch, batch, out, skip + outcome.done + len(outcome.failed))
            progress.update(len(batch))
        writer.close()
    finally:
        writer.close(raise_error=False)  # after an error: still write what was computed
        progress.close()
    return outcome


def _forward(net, x: np.ndarray, layers, most: int) -> dict:
    """net.run over at most `most` crops at a time: a 10-crop batch of 16 images is 160 crops,
    which as one forward pass is slower and needs gigabytes."""
    if len(x) <= most:
        return net.run(x, layers)
    parts = [net.run(x[i:i + most], layers) for i in range(0, len(x), most)]
    return {k: np.concatenate([p[k] for p in parts]) for k in layers}


def _write_predict_failed(output_dir: str, outcome: Outcome) -> None:
    """predict's skipped images: its own file, so an extract run's failed.txt in the same
    folder is never replaced or removed; the previous predict's list is replaced."""
    path = os.path.join(output_dir, PREDICT_FAILED_NAME)
    if outcome.failed:
        os.makedirs(output_dir, exist_ok=True)
        journal.atomic_write(path, "".join(f"{item.key}\t{reason}\n" for item, reason
                                           in outcome.failed).encode("utf-8", "surrogateescape"))
    elif os.path.exists(path):
        os.remove(path)


def _summary(what: str, done: int, failed: int, seconds: float, where: str,
             failed_path: str) -> None:
    log.info("%s %d images in %.1f s (%.2f img/s)%s", what, done, seconds,
             done / max(seconds, 1e-9), f", written to {where}" if where else "")
    if failed:
        log.warning("%d image(s) skipped, listed in %s", failed, failed_path)


def shard_slice(n: int, shard) -> slice:
    """The contiguous part of an n-item list that shard (i, count), 1-based, takes."""
    if shard is None:
        return slice(0, n)
    i, count = shard
    return slice((i - 1) * n // count, i * n // count)


def shard_dir(output_dir: str, shard) -> str:
    return os.path.join(output_dir, f"shard-{shard[0]}-of-{shard[1]}") if shard else output_dir


def extract(args) -> int:
    out_dir = shard_dir(args.output_dir, args.shard)
    device, spec, layers, items, mean = _setup(args)
    # the output folder is checked, never created, before the model and engine pass
    outputs = existing_outputs(args.format, out_dir)
    journal.check_free(out_dir, outputs, args.resume, args.overwrite)
    check_writable(out_dir)
    values, model_sha256 = _load(args, spec)
    everything = len(items)
    items = items[shard_slice(everything, args.shard)]
    shapes = {name: spec[name].shape for name in layers}
    manifest = {
        "layer_num": spec.layer_num, "layers": {k: list(v) for k, v in shapes.items()},
        "format": args.format, "model": os.path.abspath(args.model),
        "model_sha256": model_sha256,
        "data": os.path.abspath(args.data), "items": len(items),
        "list_sha256": journal.list_checksum(it.key for it in items),
        "shard": f"{args.shard[0]}/{args.shard[1]} of {everything}" if args.shard else None,
        "mean": modelinfo.describe_mean(mean, args.mean),
        "multi_crop": bool(args.multi_crop),
        "variant": spec.variant,
        "preprocessing": modelinfo.describe(mean, args.multi_crop),
    }
    if args.labels_from_folders:
        manifest["classes"] = folder_classes(args.data)
    if args.resume:  # a run that cannot be resumed is refused before the engine compiles
        journal.check_resumable(out_dir, manifest, outputs)
    net = _engine(args, device, spec, layers, items, mean, values, model_sha256)
    book = journal.Journal(out_dir, manifest, existing_outputs(args.format, out_dir),
                           args.resume, args.overwrite)
    done = book.state["position"]
    if book.resuming:
        log.info("resuming %s: %d of %d list items already done", out_dir, done, len(items))
    start = time.monotonic()
    outcome, complete = Outcome(), False
    meta = {k: manifest[k] for k in ("layer_num", "model", "mean", "multi_crop", "format",
                                     "classes") if k in manifest}
    meta["key_bytes"] = key_bytes(items)
    saved = book.state["sink"] if book.resuming else None
    with open_sink(args.format, out_dir, shapes, meta, book.state["rows"], saved) as sink:

        last_commit = [time.monotonic()]

        def on_batch(batch_items, out, consumed):
            sink.write(batch_items, out)
            if time.monotonic() - last_commit[0] >= COMMIT_EVERY:  # fsyncs cost: not per image
                sink.flush()
                book.commit(consumed, sink.count, sink.state())
                last_commit[0] = time.monotonic()

        try:
            outcome = _run(args, net, layers, items, mean, on_batch,
                           lambda item, reason: book.fail(item.key, reason), "extract", skip=done)
            sink.flush()
            book.commit(len(items), sink.count, sink.state())
            complete = True
        finally:
            book.finish(complete)
    _summary("extracted", outcome.done, book.state["failed"], time.monotonic() - start, out_dir,
             os.path.join(out_dir, FAILED_NAME))
    return EXIT_SKIPPED if book.state["failed"] else 0


def top_k(probs: np.ndarray, k: int) -> list[tuple[int, float]]:
    order = np.argsort(-probs, kind="stable")[:k]
    return [(int(i), float(probs[i])) for i in order]


def predict(args) -> int:
    args.output_layer = "output"
    device, spec, layers, items, mean = _setup(args)
    if args.output_file and os.path.exists(args.output_file) and not args.overwrite:
        raise ResnetError(f"{args.output_file}: already exists; pass --overwrite to replace it "
                          "or choose another --output_file")
    values, model_sha256 = _load(args, spec)
    net = _engine(args, device, spec, layers, items, mean, values, model_sha256)
    classes = imagenet_classes()
    k = min(args.top_k, len(classes))
    hits = [0, 0, 0]  # labelled, top-1, top-k

    def on_batch(batch_items, out, _consumed):
        for item, probs in zip(batch_items, out["output"]):
            best = top_k(probs, k)
            print(f"Label of {item.key} is: {best[0][0]}")
            for rank, (idx, p) in enumerate(best, 1):
                print(f"    {rank}. {idx:4d} {p:8.4f}  {class_name(idx)} ({classes[idx][0]})")
            if item.label is not None:
                hits[0] += 1
                hits[1] += best[0][0] == item.label
                hits[2] += item.label in [i for i, _ in best]
            if writer:
                writer.writerow([item.key] + [i for i, _ in best] + [class_name(i) for i, _ in best]
                                + [f"{p:.6g}" for _, p in best])
                csv_file.flush()

    csv_file = writer = None
    if args.output_file:
        folder = os.path.dirname(os.path.abspath(args.output_file))
        os.makedirs(folder, exist_ok=True)
        try:
            csv_file = open(args.output_file, "w", newline="", encoding="utf-8")
        except OSError as e:
            raise ResnetError(f"{args.output_file}: cannot write ({e.strerror or e})") from None
        writer = csv.writer(csv_file)
        writer.writerow(["path"] + [f"index_{r}" for r in range(1, k + 1)]
                        + [f"name_{r}" for r in range(1, k + 1)]
                        + [f"prob_{r}" for r in range(1, k + 1)])
    start = time.monotonic()
    outcome = Outcome()
    try:
        outcome = _run(args, net, layers, items, mean, on_batch, lambda item, reason: None,
                       "predict")
    finally:
        if csv_file:
            csv_file.close()
        if args.output_dir:
            _write_predict_failed(args.output_dir, outcome)
    if hits[0]:
        log.info("accuracy on %d labelled images: top-1 %.2f%%, top-%d %.2f%%", hits[0],
                 100.0 * hits[1] / hits[0], k, 100.0 * hits[2] / hits[0])
    _summary("predicted", outcome.done, len(outcome.failed), time.monotonic() - start,
             args.output_file, os.path.join(args.output_dir or ".", PREDICT_FAILED_NAME))
    return outcome.exit_code
