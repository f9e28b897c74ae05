"""The local runner: decode in worker processes, run batches here, write on a writer thread.

The engine never waits on the disk (sinks run on their own thread behind a bounded queue) nor
on decoding (the workers fill the next batch during the forward pass); every callback comes
in list order. A bad image is reported and skipped unless --strict. An extract writes one
sink in list order, with a durable point (journal commit) every few seconds.
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time

import numpy as np

from resnet.common.progress import Progress
from resnet.errors import ResnetError
from resnet.inputs.facts import crops_per_image
from resnet.runners import RUNNERS
from resnet.runners.base import Extracted, Extraction, Outcome

log = logging.getLogger("resnet")
#: seconds between durable points, overriding the format's own (1 s; Parquet 30 s): a setting
#: a user may give in the environment
COMMIT_ENV = "RESNET_COMMIT_SECONDS"


def engine_for(settings, inputs, model, layers, device: str):
    """The run's engine (runtime.engine.build) with its EngineSettings `settings` and the
    InputSettings `inputs` (the largest batch; the calibration images): the local
    runner's, and each Ray actor's (whose `settings` carry the threads sized for it)."""
    from resnet.inputs.calibration import calibration_images
    from resnet.runtime import engine

    return engine.build(
        model, layers, device, settings,
        max_batch=max(inputs.batch_size, crops_per_image(inputs.multi_crop)),
        calibration=lambda: calibration_images(settings.calibration, inputs,
                                               model.preprocessing, settings.precision))


def chosen_precision(net) -> dict:
    """The manifest entries of a --precision=auto run: the precision it chose and the
    speeds it measured (the engine's `auto` record), nothing otherwise."""
    auto = getattr(net, "auto", None)
    return {"precision_chosen": auto["precision"], "precision_measured": auto} if auto else {}


@RUNNERS.register("local")
class LocalRunner:
    """This machine: the engine here, decoding workers beside it (runners/base.py: Runner)."""

    def __init__(self, config):
        self.inputs, self.engine = config.input_settings, config.engine_settings
        self.crops = crops_per_image(self.inputs.multi_crop)
        self.net = self.decoders = None
        self.layers = []

    def device(self) -> str:
        from resnet.runtime.paddle_env import select_device

        return select_device(self.engine.use_gpu)

    def manifest(self, items, preprocessing, out_dir) -> dict:
        return {}

    @contextlib.contextmanager
    def streaming(self, model, layers, device: str, items_count: int):
        """Decoding workers started, then the engine built (compiled and checked on first
        use); yields this runner, ready to `run`; the workers are stopped at the end."""
        from resnet.inputs.decoding import Decoders, decode_between_passes

        self.layers = list(layers)
        self.decoders = Decoders(model.preprocessing, self.inputs, items_count,
                                 lockstep=decode_between_passes(device, self.engine.threads))
        try:
            self.net = engine_for(self.engine, self.inputs, model, layers, device)
            yield self
        finally:
            self.decoders.close()

    def run(self, items, on_batch, on_fail, desc, skip=0) -> Outcome:
        """Feed items[skip:] through the network, in order, batch by batch.

        Calls on_batch(batch_items, outputs, consumed) after each batch, where `consumed`
        counts the list items (good and bad) taken so far, and on_fail(item, reason) for each
        bad image.
        """
        outcome = Outcome()
        progress = Progress(len(items), desc, initial=skip)
        strict, crops = self.inputs.strict, self.crops

        def on_error(item, err):
            if strict:
                raise ResnetError(f"{err} (stopped: --strict)")
            log.warning("skipped %s", err)
            outcome.failed.append((item, str(err)))
            writer.submit(on_fail, item, str(err))  # in list order with the batches' writes
            progress.update(1)

        writer = Writer()
        try:
            for batch, x in self.decoders.batched(items[skip:], on_error):
                out = infer(self.net, self.layers, x, len(batch), crops, self.inputs.batch_size)
                outcome.done += len(batch)
                writer.submit(on_batch, batch, out, skip + outcome.done + len(outcome.failed))
                progress.update(len(batch))
            writer.close()
        finally:
            writer.close(raise_error=False)  # after an error: still write what was computed
            progress.close()
            self.decoders.close()
        return outcome

    def extract(self, x: Extraction) -> Extracted:
        """One sink written in list order as batches come back, committed to the journal
        every few seconds; --resume continues after the last commit."""
        from resnet.outputs.base import open_sink

        output, items = x.output, x.items
        with self.streaming(x.model, x.layers, x.device, len(items)):
            book = x.journal(**chosen_precision(self.net))
            done = book.state["position"]
            if book.resuming:
                log.info("resuming %s: %d of %d list items already done", x.out_dir, done,
                         len(items))
            start = time.monotonic()
            outcome, complete, dtype = None, False, np.dtype(output.dtype)
            saved = book.state["sink"] if book.resuming else None
            try:
                with open_sink(output.format, x.out_dir, x.shapes, x.meta, book.state["rows"],
                               saved) as sink:
                    commit_every = float(os.environ.get(COMMIT_ENV, sink.commit_every))
                    last_commit = [time.monotonic()]
                    # where the last whole batch left the list and the failure count
                    written = {"position": done, "whole": True, "failed": book.state["failed"]}

                    def on_batch(batch_items, out, consumed):
                        written["whole"] = False
                        sink.write(batch_items,
                                   {k: v.astype(dtype, copy=False) for k, v in out.items()})
                        if time.monotonic() - last_commit[0] >= commit_every:  # fsyncs
                            sink.flush()
                            book.commit(consumed, sink.count, sink.state())
                            last_commit[0] = time.monotonic()
                        written.update(position=consumed, whole=True,
                                       failed=book.state["failed"])

                    try:
                        outcome = self.run(items, on_batch,
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
                complete = True  # only once the sink is closed: its last file is whole, named
            finally:
                book.finish(complete)
        return Extracted(outcome.done, [(it.key, why) for it, why in outcome.failed],
                         book.state["failed"], book.state["rows"], time.monotonic() - start)


def infer(net, layers, x: np.ndarray, images: int, crops: int, batch_size: int) -> dict:
    """The layers' outputs for `images` images whose crops are x, crops averaged per image.

    net.run sees at most max(batch_size, crops) crops at a time: a 10-crop batch of 16 images
    is 160 crops, which as one forward pass is slower and needs gigabytes. Every runner
    computes its outputs here.
    """
    most = max(batch_size, crops)
    if len(x) <= most:
        out = net.run(x, layers)
    else:
        parts = [net.run(x[i:i + most], layers) for i in range(0, len(x), most)]
        out = {k: np.concatenate([p[k] for p in parts]) for k in layers}
    if crops > 1:
        out = {k: v.reshape(images, crops, *v.shape[1:]).mean(axis=1) for k, v in out.items()}
    return out


class Writer:
    """Runs sink calls in submission order on one thread behind a bounded queue.

    The engine never waits on the disk unless `depth` batches are already queued (then it
    must: memory stays bounded). The first error is raised in the submitting thread; later
    calls are skipped. close() waits for everything queued.
    """

    def __init__(self, depth: int = 4):
        self.queue = queue.Queue(depth)
        self.error = None
        self.closed = False
        self.thread = threading.Thread(target=self._loop, name="resnet-writer", daemon=True)
        self.thread.start()

    def _loop(self):
        while True:
            job = self.queue.get()
            if job is None:
                return
            fn, args = job
            if self.error is None:
                try:
                    fn(*args)
                except BaseException as e:  # noqa: B036 - handed to the caller's thread
                    self.error = e

    def submit(self, fn, *args) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((fn, args))

    def close(self, raise_error: bool = True) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put(None)
            self.thread.join()
        if raise_error and self.error is not None:
            raise self.error
