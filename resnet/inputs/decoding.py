"""Decoding ahead of the engine, in list order, with memory bounded.

Paddle Inference holds the GIL for a whole forward pass (measured: a Python thread gets ~1%
of its speed during predictor.run()), so decoding threads would only run between batches.
Worker processes decode instead (during a GPU forward pass; between CPU ones, see below):
each writes an image's crops into a slot of a shared-memory ring and sends back only the slot
number; at most `prefetch` images
are in flight however long the list. A bad image comes back as an ImageError; a worker that
crashes on a file costs that file only (it is reported, the worker replaced).
RESNET_DECODER=thread|process picks the kind (process by default; the bench compares them).

When the engine's threads take every core (the CPU engines by default), workers decoding
during the forward pass only preempt those threads, and a preempted thread stalls the others
at the next barrier: measured on 2 cores, decoding during the forward slowed it by about 1.4x
the decoding's own CPU time. There the workers run in lockstep instead: one per core, the
next batch handed out only once the current one is taken, so they decode between forward
passes with the cores to themselves: 2-3% more images/s end to end on 300-640 px JPEGs,
19% on 1200-2400 px photos (bench/throughput.py, 2 cores).

A run's workers live in one Decoders object (no module state): started before the engine
loads, used by the runner, closed at the end.

The workers are plain `python -c` children serving `_child` (common.children says why not
multiprocessing's spawn or fork). The ring is an anonymous shared file (memfd) handed down as a file
descriptor; its first bytes carry the run's preprocessing settings.
"""
from __future__ import annotations

import mmap
import os
import pickle
import signal
import struct
import subprocess
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection, wait

import numpy as np

from resnet.common.children import start_child, stop_children
from resnet.common.cpu import usable_cores
from resnet.common.files import shared_memory_file
from resnet.errors import ImageError, ResnetError
from resnet.inputs.facts import CROPS
from resnet.inputs.imaging import preprocess

DECODER_ENV = "RESNET_DECODER"
SLOT_BYTES = 256 << 20  # the shared ring's ceiling; 10-crop images are 6 MB each


def default_workers(lockstep: bool = False) -> int:
    """Half the cores, at least one: decoding needs ~5% of the engine's CPU time, and a
    worker more only takes cores from the engine's threads. In lockstep (decoding between
    forward passes) one per core, up to 8: the cores are idle otherwise."""
    return max(1, min(8, usable_cores())) if lockstep else max(1, min(4, usable_cores() // 2))


def decode_between_passes(device: str, threads: int) -> bool:
    """Whether decoding waits for the forward passes: yes where the engine has a thread on
    every core (a CPU engine with the default --threads), which leaves none for decoding."""
    return device == "cpu" and not 0 < threads < usable_cores()


def _decoder_kind() -> str:
    kind = os.environ.get(DECODER_ENV, "process").strip().lower()
    if kind not in ("process", "thread"):
        raise ResnetError(f"{DECODER_ENV}={kind!r}: choose process or thread")
    return kind if os.name == "posix" else "thread"  # workers get descriptors (pass_fds)


def crops_or_error(path, mean, multi_crop, reduced=False):
    """Crops of one image, or the ImageError saying why not (any decoder failure is one)."""
    try:
        return preprocess(path, mean, multi_crop, reduced)
    except ImageError as e:
        return e
    except Exception as e:  # e.g. cv2.error or MemoryError on a hostile file: this file only
        return ImageError(f"{path}: cannot decode ({type(e).__name__}: {e})")


_HEADER = struct.Struct("<Q")  # the ring starts with the pickled settings' length


def _child(conn_fd: int, ring_fd: int) -> None:
    """A decoding process (started by _Worker): the settings and slots from the ring, then
    (seq, path, slot) in, (seq, kind, payload) out, until None or EOF (the parent is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(conn_fd)
    ring = mmap.mmap(ring_fd, os.fstat(ring_fd).st_size)
    os.close(ring_fd)
    length = _HEADER.unpack_from(ring)[0]
    slot_size, slots_n, mean, multi_crop, reduced = pickle.loads(
        ring[_HEADER.size:_HEADER.size + length])
    slots = np.frombuffer(ring, np.float32, slots_n * slot_size,
                          _slots_offset(length)).reshape(slots_n, slot_size)
    _serve(conn, slots, slot_size, mean, multi_crop, reduced)


def _serve(conn, slots, slot_size, mean, multi_crop, reduced=False) -> None:
    conn.send((None, "ready", None))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        seq, path, slot = task
        out = crops_or_error(path, mean, multi_crop, reduced)
        if isinstance(out, ImageError):
            conn.send((seq, "error", str(out)))
        elif out.size <= slot_size:
            slots[slot, :out.size] = out.reshape(-1)
            conn.send((seq, "slot", out.shape))
        else:  # larger than planned (a recipe with another crop size): by value
            conn.send((seq, "array", out))


def _slots_offset(settings_length: int) -> int:
    return -(-(_HEADER.size + settings_length) // 64) * 64


class _Worker:
    """One decoding child process and the connection to it."""

    def __init__(self, ring_fd: int):
        try:
            self.proc, self.conn = start_child("resnet.inputs.decoding:_child", ring_fd)
        except OSError as e:
            raise ResnetError(f"cannot start a decoding worker ({e.strerror or e}); run with "
                              "RESNET_DECODER=thread or --workers=0") from None
        self.tasks = deque()  # seqs sent and not answered, in the order it works on them
        self.ready = False  # it sends one "ready" once its imports are done
        self.gone = False  # its connection ended: it exited or was killed

    def exit_code(self):
        """The exit status of a worker whose connection ended (killed if it lingers)."""
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class _Processes:
    """Worker processes sharing a ring of slots; `ordered` yields results in list order."""

    def __init__(self, mean, multi_crop, workers, prefetch, reduced=False):
        crops = CROPS if multi_crop else 1
        size = mean.crop
        self.slot_size = crops * 3 * size * size
        self.slots_n = max(2, min(prefetch, SLOT_BYTES // (4 * self.slot_size)))
        settings = pickle.dumps((self.slot_size, self.slots_n, mean, multi_crop, reduced),
                                pickle.HIGHEST_PROTOCOL)
        offset = _slots_offset(len(settings))
        self.ring_fd = shared_memory_file(offset + 4 * self.slots_n * self.slot_size, "decode")
        self.ring = mmap.mmap(self.ring_fd, offset + 4 * self.slots_n * self.slot_size)
        _HEADER.pack_into(self.ring, 0, len(settings))
        self.ring[_HEADER.size:_HEADER.size + len(settings)] = settings
        self.slots = np.frombuffer(self.ring, np.float32, self.slots_n * self.slot_size,
                                   offset).reshape(self.slots_n, -1)
        self.workers = []
        try:
            for _ in range(workers):
                self.workers.append(_Worker(self.ring_fd))
        except BaseException:
            self.close()
            raise
        self.free = list(range(self.slots_n))
        self.jobs = {}  # seq -> (item, slot)
        self.done = {}  # seq -> ("slot", shape) | ("array", array) | ("error", text)

    def _send(self, seq, worker=None):
        item, slot = self.jobs[seq]
        worker = worker or min(self.workers, key=lambda w: len(w.tasks))
        worker.tasks.append(seq)
        worker.conn.send((seq, item.path, slot))

    def _receive(self, worker) -> None:
        while not worker.gone and worker.conn.poll():
            try:
                seq, kind, payload = worker.conn.recv()
            except (EOFError, OSError):
                worker.gone = True
                return
            if kind == "ready":
                worker.ready = True
                continue
            worker.tasks.remove(seq)
            self.done[seq] = (kind, payload)

    def _replace(self, worker) -> None:
        """A worker died: its current file is the culprit, the files queued behind it move."""
        self._receive(worker)
        code = worker.exit_code()
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
        fresh = _Worker(self.ring_fd)
        self.workers.append(fresh)
        for seq in worker.tasks:
            self._send(seq, fresh)

    def _poll(self) -> None:
        """Wait for answers; a worker that died shows as the end of its connection (only it
        holds the other end)."""
        by_conn = {w.conn: w for w in self.workers}
        for conn in wait(list(by_conn)):
            self._receive(by_conn[conn])
        for worker in [w for w in self.workers if w.gone]:
            self._replace(worker)

    def ordered(self, items, lockstep: int = 0):
        """(item, crops | ImageError, release) in list order; release() frees crops' slot.

        With `lockstep` (a batch size), images are handed to the workers once everything
        handed out before has been taken, as many as the consumer's batch still lacks (a
        bad image leaves it one short): the workers then decode between the consumer's
        forward passes, not during them.
        """
        it = iter(enumerate(items))
        issued = nxt = good = 0
        exhausted = False
        while True:
            if not lockstep:
                window = len(self.free)
            else:
                window = lockstep - good % lockstep if nxt == issued else 0
            while self.free and not exhausted and window > 0:
                window -= 1
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
            good += kind != "error"
            if kind == "slot":
                crops = self.slots[slot, :int(np.prod(payload))].reshape(payload)
                yield item, crops, lambda s=slot: self.free.append(s)
            else:
                self.free.append(slot)
                yield item, ImageError(payload) if kind == "error" else payload, _noop
            nxt += 1

    def close(self) -> None:
        """Stop the workers (they ignore SIGINT and SIGTERM: a worker still busy after 2 s is
        killed) and release the ring's descriptor (the mapping goes with its last view)."""
        stop_children([(w.proc, w.conn) for w in self.workers], 2)
        self.workers = []
        if self.ring_fd is not None:
            os.close(self.ring_fd)
            self.ring_fd = None


def _noop():
    pass


def _ordered_threads(items, mean, multi_crop, workers, prefetch, reduced=False):
    """The thread-pool variant: useful where a process cannot be started."""
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        pending = deque()
        it = iter(items)
        for item in it:
            pending.append((item, pool.submit(crops_or_error, item.path, mean, multi_crop,
                                              reduced)))
            if len(pending) >= prefetch:
                break
        while pending:
            item, fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(crops_or_error, nxt.path, mean, multi_crop,
                                                 reduced)))
            yield item, fut.result(), _noop


def plan(items_count: int, workers, batch_size: int, lockstep: bool = False) -> tuple[int, int]:
    """(worker processes, images in flight) for a run: no idle workers for a short list,
    and room for a batch and a bit, so the next batch can decode while this one is used."""
    workers = default_workers(lockstep) if workers is None else workers
    workers = min(workers, items_count)
    return workers, batch_size + 2 * max(1, workers)


class Decoders:
    """The decoding workers of one run, started early (about 0.3 s each) so they warm up
    while the engine loads; `batched` uses them, `close` stops them. `lockstep`: the engine
    takes every core, so worker processes decode between its forward passes (module doc).
    `inputs`: the run's config.InputSettings (crops per image, batch size, workers,
    --reduced_decode, handed to the workers with the preprocessing)."""

    def __init__(self, preprocessing, inputs, items_count, lockstep: bool = False):
        multi_crop, batch_size, workers = inputs.multi_crop, inputs.batch_size, inputs.workers
        self.preprocessing, self.multi_crop = preprocessing, bool(multi_crop)
        self.reduced = bool(inputs.reduced_decode)
        self.batch_size, self.lockstep = batch_size, lockstep
        self.workers, self.prefetch = plan(items_count, workers, batch_size, lockstep)
        self.kind = _decoder_kind() if self.workers > 0 else "inline"
        self.pool = (_Processes(preprocessing, multi_crop, self.workers, self.prefetch,
                                self.reduced) if self.kind == "process" else None)

    def ordered(self, items):
        """(item, crops | ImageError, release) in list order."""
        mean, multi, reduced = self.preprocessing, self.multi_crop, self.reduced
        if self.kind == "inline":  # for debugging, and nothing to do for an empty list
            return ((item, crops_or_error(item.path, mean, multi, reduced), _noop)
                    for item in items)
        if self.kind == "thread":
            return _ordered_threads(items, mean, multi, self.workers, self.prefetch, reduced)
        return self.pool.ordered(items, self.batch_size if self.lockstep else 0)

    def batched(self, items, on_error):
        return _batches(self.ordered(items), self.batch_size, on_error)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def batched(items, mean, multi_crop, batch_size, on_error, workers=None, lockstep=False):
    """Yield (batch items, crops array) of up to `batch_size` good images, in list order.

    Bad images go to on_error(item, ImageError). The array, (images * crops, 3, H, W), is a
    buffer reused for the next batch: use it before asking for the next one.
    """
    from resnet.config import InputSettings

    inputs = InputSettings(multi_crop=multi_crop, batch_size=batch_size, workers=workers)
    with Decoders(mean, inputs, len(items), lockstep) as decoders:
        yield from decoders.batched(items, on_error)


def _batches(results, batch_size, on_error):
    buf, batch, rows = None, [], 0
    for item, crops, release in results:
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
