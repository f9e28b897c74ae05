"""Decoding ahead of the engine and writing behind it, in list order, with memory bounded.

Paddle Inference holds the GIL for a whole forward pass (measured: a Python thread gets ~1%
of its speed during predictor.run()), so decoding threads would only run between batches.
Worker processes decode during the forward pass instead: each writes an image's crops into a
slot of a shared-memory ring and sends back only the slot number; at most `prefetch` images
are in flight however long the list. A bad image comes back as an ImageError; a worker that
crashes on a file costs that file only (it is reported, the worker replaced).
RESNET_DECODER=thread|process picks the kind (process by default; the bench compares them).

Sinks run on a writer thread behind a bounded queue, so a slow disk or fsync never stalls the
engine, and their calls keep the list's order.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import wait

import numpy as np

from .cpu import usable_cores
from .errors import ImageError, ResnetError
from .imaging import CROPS, preprocess
from .spec import INPUT_SIZE

DECODER_ENV = "RESNET_DECODER"
SLOT_BYTES = 256 << 20  # the shared ring's ceiling; 10-crop images are 6 MB each


def default_workers() -> int:
    """Half the cores, at least one: decoding needs ~5% of the engine's CPU time, and a
    worker more only takes cores from the engine's threads."""
    return max(1, min(4, usable_cores() // 2))


def _decoder_kind() -> str:
    kind = os.environ.get(DECODER_ENV, "process").strip().lower()
    if kind not in ("process", "thread"):
        raise ResnetError(f"{DECODER_ENV}={kind!r}: choose process or thread")
    return kind


def _work(path, mean, multi_crop):
    """Crops of one image, or the ImageError saying why not (any decoder failure is one)."""
    try:
        return preprocess(path, mean, multi_crop)
    except ImageError as e:
        return e
    except Exception as e:  # e.g. cv2.error or MemoryError on a hostile file: this file only
        return ImageError(f"{path}: cannot decode ({type(e).__name__}: {e})")


def _worker(conn, ring, slot_size, mean, multi_crop):
    """A decoding process: (seq, path, slot) in, (seq, kind, payload) out, until None/EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    slots = np.frombuffer(ring, dtype=np.float32).reshape(-1, slot_size)
    conn.send((None, "ready", None))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        seq, path, slot = task
        out = _work(path, mean, multi_crop)
        if isinstance(out, ImageError):
            conn.send((seq, "error", str(out)))
        elif out.size <= slot_size:
            slots[slot, :out.size] = out.reshape(-1)
            conn.send((seq, "slot", out.shape))
        else:  # larger than planned (a recipe with another crop size): by value
            conn.send((seq, "array", out))


class _Worker:
    def __init__(self, ctx, args):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, *args), daemon=True,
                                name="resnet-decode")
        self.proc.start()
        child.close()
        self.tasks = deque()  # seqs sent and not answered, in the order it works on them
        self.ready = False  # it sends one "ready" once its imports are done


class _Processes:
    """Worker processes sharing a ring of slots; `ordered` yields results in list order."""

    def __init__(self, mean, multi_crop, workers, prefetch):
        crops = CROPS if multi_crop else 1
        size = getattr(mean, "crop", INPUT_SIZE)
        self.slot_size = crops * 3 * size * size
        self.slots_n = max(2, min(prefetch, SLOT_BYTES // (4 * self.slot_size)))
        self.ctx = mp.get_context("spawn")  # no fork of a process holding Paddle's threads
        self.ring = self.ctx.RawArray("f", self.slots_n * self.slot_size)
        self.slots = np.frombuffer(self.ring, dtype=np.float32).reshape(self.slots_n, -1)
        self.args = (self.ring, self.slot_size, mean, multi_crop)
        self.workers = [_Worker(self.ctx, self.args) for _ in range(workers)]
        self.free = list(range(self.slots_n))
        self.jobs = {}  # seq -> (item, slot)
        self.done = {}  # seq -> ("slot", shape) | ("array", array) | ("error", text)

    def _send(self, seq, worker=None):
        item, slot = self.jobs[seq]
        worker = worker or min(self.workers, key=lambda w: len(w.tasks))
        worker.tasks.append(seq)
        worker.conn.send((seq, item.path, slot))

    def _receive(self, worker) -> None:
        while worker.conn.poll():
            try:
                seq, kind, payload = worker.conn.recv()
            except (EOFError, OSError):
                return
            if kind == "ready":
                worker.ready = True
                continue
            worker.tasks.remove(seq)
            self.done[seq] = (kind, payload)

    def _replace(self, worker) -> None:
        """A worker died: its current file is the culprit, the files queued behind it move."""
        self._receive(worker)
        code = worker.proc.exitcode
        self.workers.remove(worker)
        worker.conn.close()
        if not worker.ready:
            raise ResnetError(f"a decoding worker failed to start (exit code {code}); run "
                              "with RESNET_DECODER=thread or --workers=0 to see why")
        if worker.tasks:
            culprit = worker.tasks.popleft()
            path = self.jobs[culprit][0].path
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            self.done[culprit] = ("error", f"{path}: the image decoder crashed on this file "
                                  f"({how})")
        fresh = _Worker(self.ctx, self.args)
        self.workers.append(fresh)
        for seq in worker.tasks:
            self._send(seq, fresh)

    def _poll(self) -> None:
        by_conn = {w.conn: w for w in self.workers}
        by_sentinel = {w.proc.sentinel: w for w in self.workers}
        ready = wait(list(by_conn) + list(by_sentinel))
        for obj in ready:
            if obj in by_conn:
                self._receive(by_conn[obj])
        for obj in ready:
            if obj in by_sentinel:
                self._replace(by_sentinel[obj])

    def ordered(self, items):
        """(item, crops | ImageError, release) in list order; release() frees crops' slot."""
        it = iter(enumerate(items))
        issued = nxt = 0
        exhausted = False
        while True:
            while self.free and not exhausted:
                got = next(it, None)
                if got is None:
                    exhausted = True
                    break
                seq, item = got
                self.jobs[seq] = (item, self.free.pop())
                self._send(seq)
                issued += 1
            if nxt == issued:
                return
            while nxt not in self.done:
                self._poll()
            kind, payload = self.done.pop(nxt)
            item, slot = self.jobs.pop(nxt)
            if kind == "slot":
                crops = self.slots[slot, :int(np.prod(payload))].reshape(payload)
                yield item, crops, lambda s=slot: self.free.append(s)
            else:
                self.free.append(slot)
                yield item, ImageError(payload) if kind == "error" else payload, _noop
            nxt += 1

    def close(self) -> None:
        for w in self.workers:
            try:
                w.conn.send(None)
            except OSError:
                pass
        for w in self.workers:
            w.proc.join(timeout=2)
            if w.proc.is_alive():
                w.proc.terminate()
                w.proc.join(timeout=2)
            w.conn.close()
        self.workers = []


def _noop():
    pass


def _ordered_threads(items, mean, multi_crop, workers, prefetch):
    """The thread-pool variant: useful where a process cannot be started."""
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        pending = deque()
        it = iter(items)
        for item in it:
            pending.append((item, pool.submit(_work, item.path, mean, multi_crop)))
            if len(pending) >= prefetch:
                break
        while pending:
            item, fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(_work, nxt.path, mean, multi_crop)))
            yield item, fut.result(), _noop


_warm = None  # (key, _Processes) started by prestart(), taken by the next run that matches


def _plan(items_count, workers, batch_size):
    workers = default_workers() if workers is None else workers
    workers = min(workers, items_count)  # no idle processes for a short list
    return workers, batch_size + 2 * max(1, workers)


def prestart(mean, multi_crop, batch_size, workers, items_count) -> None:
    """Start the decoding processes now (about 0.3 s each), while the engine loads."""
    global _warm
    workers, prefetch = _plan(items_count, workers, batch_size)
    if _warm is not None:
        _warm[1].close()
        _warm = None
    if workers > 0 and _decoder_kind() == "process":
        key = (id(mean), bool(multi_crop), workers, prefetch)
        _warm = (key, _Processes(mean, multi_crop, workers, prefetch))


def _ordered(items, mean, multi_crop, workers, prefetch):
    """(item, crops | ImageError, release) in list order, from `workers` as _plan gave."""
    global _warm
    if workers <= 0:  # inline, for debugging (and nothing to do for an empty list)
        yield from ((item, _work(item.path, mean, multi_crop), _noop) for item in items)
        return
    if _decoder_kind() == "thread":
        yield from _ordered_threads(items, mean, multi_crop, workers, prefetch)
        return
    warm, _warm = _warm, None
    if warm is not None and warm[0] == (id(mean), bool(multi_crop), workers, prefetch):
        pool = warm[1]
    else:
        if warm is not None:
            warm[1].close()
        pool = _Processes(mean, multi_crop, workers, prefetch)
    try:
        yield from pool.ordered(items)
    finally:
        pool.close()


def batched(items, mean, multi_crop, batch_size, on_error, workers=None, prefetch=None):
    """Yield (batch items, crops array) of up to `batch_size` good images, in list order.

    Bad images go to on_error(item, ImageError). The array, (images * crops, 3, H, W), is a
    buffer reused for the next batch: use it before asking for the next one. `prefetch`
    defaults to a batch and a bit, so the workers decode the next batch during the forward.
    """
    w, planned = _plan(len(items), workers, batch_size)
    buf, batch, rows = None, [], 0
    for item, crops, release in _ordered(items, mean, multi_crop, w, prefetch or planned):
        if isinstance(crops, ImageError):
            release()
            on_error(item, crops)
            continue
        n = len(crops)
        if buf is None or buf.shape[1:] != crops.shape[1:] or len(buf) < rows + n:
            if batch:  # a shape change mid-batch (cannot happen with one recipe): flush first
                yield batch, buf[:rows]
                batch, rows = [], 0
            buf = np.empty((max(batch_size * n, n), *crops.shape[1:]), np.float32)
        buf[rows:rows + n] = crops
        release()
        batch.append(item)
        rows += n
        if len(batch) == batch_size:
            yield batch, buf[:rows]
            batch, rows = [], 0
    if batch:
        yield batch, buf[:rows]


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
