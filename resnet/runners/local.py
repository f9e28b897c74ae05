"""The local runner: decode in worker processes, run batches here, write on a writer thread.

The engine never waits on the disk (sinks run on their own thread behind a bounded queue) nor
on decoding (the workers fill the next batch during the forward pass); every callback comes
in list order. A bad image is reported and skipped unless --strict.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field

import numpy as np

from resnet.common.progress import Progress
from resnet.errors import ResnetError
from resnet.inputs.imaging import CROPS
from resnet.runners import RUNNERS

log = logging.getLogger("resnet")


@dataclass
class Outcome:
    done: int = 0
    failed: list = field(default_factory=list)  # (item, reason)


@RUNNERS.register("local")
class LocalRunner:
    parallel_writers = False  # the job writes, in list order, as batches come back

    def __init__(self, config, net, layers, decoders):
        self.config, self.net, self.layers, self.decoders = config, net, list(layers), decoders
        self.crops = CROPS if config.multi_crop else 1

    def run(self, items, on_batch, on_fail, desc, skip=0) -> Outcome:
        """Feed items[skip:] through the network, in order, batch by batch.

        Calls on_batch(batch_items, outputs, consumed) after each batch, where `consumed`
        counts the list items (good and bad) taken so far, and on_fail(item, reason) for each
        bad image.
        """
        outcome = Outcome()
        progress = Progress(len(items), desc, initial=skip)
        strict, crops = self.config.strict, self.crops

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
                out = infer(self.net, self.layers, x, len(batch), crops, self.config.batch_size)
                outcome.done += len(batch)
                writer.submit(on_batch, batch, out, skip + outcome.done + len(outcome.failed))
                progress.update(len(batch))
            writer.close()
        finally:
            writer.close(raise_error=False)  # after an error: still write what was computed
            progress.close()
            self.decoders.close()
        return outcome

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.decoders.close()



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
