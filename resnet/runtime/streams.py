"""One compiled model run by several engine processes, each on its own cores and its own
slice of every batch (what OpenVINO calls streams, done with processes).

Why processes: OpenVINO's int8 kernels lose part of every extra core to their own
synchronisation, while single-threaded engines side by side each keep a core busy
(docs/performance.md, "int8 streams"). Paddle Inference holds the GIL for a whole forward
pass, so engines in threads of one process would run one after the other. Each stream is
a child started as the decoding workers are (common.children) that loads the same cached
model.

Batches travel through shared memory (common.files.shared_memory_file): each stream has an
input region and an output region per layer, and the pipe carries only image counts (arrays
pickled through the pipe kept the main thread busy while the streams waited:
docs/engine_notes.md).

A stream that fails or dies ends the run with one line naming it; the streams stop when
their Streams is closed or collected, and a stream whose parent is gone sees the end of its
pipe and exits.
"""
from __future__ import annotations

import importlib
import mmap
import os
import signal
import subprocess
import weakref
from multiprocessing.connection import Connection

import numpy as np

from resnet.common.children import start_child, stop_children
from resnet.common.files import shared_memory_file
from resnet.errors import ResnetError, first_line

def _regions(memory, count: int, per: int, input_shape, output_shapes: dict) -> list:
    """Per stream: (input array (per, *input_shape), {layer: output array (per, *shape)}),
    float32 views into the shared `memory`, laid out stream after stream."""
    out, offset = [], 0

    def take(shape):
        nonlocal offset
        size = int(np.prod(shape))
        view = np.frombuffer(memory, np.float32, size, offset).reshape(shape)
        offset += 4 * size
        return view

    for _ in range(count):
        x = take((per, *input_shape))
        out.append((x, {name: take((per, *shape)) for name, shape in output_shapes.items()}))
    return out


def _size(count: int, per: int, input_shape, output_shapes: dict) -> int:
    each = int(np.prod(input_shape)) + sum(int(np.prod(s)) for s in output_shapes.values())
    return 4 * count * per * each


def _child(conn_fd: int, memory_fd: int) -> None:
    """A stream: its engine from the parent's arguments, then (images in its input region)
    -> outputs in its output regions, until None or the end of the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    conn = Connection(conn_fd)
    try:
        args = conn.recv()
        # cores of its own: OpenVINO pins its threads to the first cores it may use, so
        # streams left on the same set would all run on the same cores
        os.sched_setaffinity(0, args.pop("cores"))
        index, count, per = args.pop("index"), args.pop("count"), args.pop("per")
        output_shapes = args.pop("output_shapes")
        memory = mmap.mmap(memory_fd, os.fstat(memory_fd).st_size)
        os.close(memory_fd)
        x, outputs = _regions(memory, count, per, args["input_shape"], output_shapes)[index]
        module, name = args.pop("engine").split(":")
        net = getattr(importlib.import_module(module), name)(**args)
        answer = ("ready", net.backend)
    except Exception as e:
        answer, net = ("error", _why(e)), None
    while True:
        try:
            conn.send(answer)
            n = None if net is None else conn.recv()
        except (EOFError, OSError):  # the parent is gone or stopped listening
            return
        if n is None:
            return
        try:
            got = net.run(x[:n])
            for name, value in got.items():
                outputs[name][:n] = value
            answer = ("ok", None)
        except Exception as e:
            answer = ("error", _why(e))


def _why(e: Exception) -> str:
    """A stream's failure in one line: ours as it is, a foreign one with its type."""
    if isinstance(e, ResnetError):
        return str(e)
    return f"{type(e).__name__}: {first_line(str(e), 300)}"


def _stop(procs, conns) -> None:
    stop_children(zip(procs, conns), 5)


class Streams:
    """`count` engine processes for the compiled model at `prefix`, each on its own share of
    this process's cores; `run` has the engine's contract, each batch split between them in
    order. `engine`: "module:class" of the engine each process builds (engine.py's
    InferenceEngine, named by its caller: this module does not import it); `output_shapes`:
    each layer's shape per image, as the engine returns it. `threads`: each process's count
    of cores (they differ by one at most); `description`, the log's, is the caller's."""

    def __init__(self, engine: str, prefix: str, layers: list[str], count: int,
                 precision: str, max_batch: int, backend: str, input_shape,
                 output_shapes: dict):
        cores = sorted(os.sched_getaffinity(0))
        if not 2 <= count <= len(cores):
            raise ValueError(f"{count} streams on {len(cores)} cores")
        shares = [[int(c) for c in part] for part in np.array_split(cores, count)]
        self.layers, self.prefix, self.precision = list(layers), prefix, precision
        self.device, self.backend, self.count = "cpu", backend, count
        self.threads, self.per = [len(s) for s in shares], -(-max(1, max_batch) // count)
        self.description = f"{count} engine processes"
        shapes = {name: tuple(output_shapes[name]) for name in self.layers}
        self.procs, self.conns = [], []
        self._finalizer = weakref.finalize(self, _stop, self.procs, self.conns)
        fd = shared_memory_file(_size(count, self.per, input_shape, shapes), "streams")
        try:
            self.memory = mmap.mmap(fd, os.fstat(fd).st_size)
            self.regions = _regions(self.memory, count, self.per, input_shape, shapes)
            args = dict(engine=engine, prefix=prefix, layers=self.layers, device="cpu",
                        precision=precision, max_batch=self.per, backend=backend,
                        input_shape=tuple(input_shape), count=count, per=self.per,
                        output_shapes=shapes)
            for i in range(count):
                proc, mine = start_child("resnet.runtime.streams:_child", fd)
                self.procs.append(proc)
                self.conns.append(mine)
                mine.send(dict(args, index=i, cores=set(shares[i]), threads=len(shares[i])))
            for i in range(count):
                what = self._answer(i)
                if what != backend:  # OpenVINO handed over to oneDNN in that process
                    raise ResnetError(f"engine stream {i + 1} runs {what}, not {backend}")
        except BaseException:
            self.close()
            raise
        finally:
            os.close(fd)

    def _exited(self, i: int) -> ResnetError:
        try:
            code = self.procs[i].wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        return ResnetError(f"engine stream {i + 1} of {self.count} exited (exit code {code})")

    def _send(self, i: int, n: int) -> None:
        try:
            self.conns[i].send(n)
        except OSError:
            raise self._exited(i) from None

    def _answer(self, i: int):
        try:
            kind, payload = self.conns[i].recv()
        except (EOFError, OSError):
            raise self._exited(i) from None
        if kind == "error":
            raise ResnetError(f"engine stream {i + 1} of {self.count} failed: {payload}")
        return payload

    def describe(self) -> str:
        return self.description

    def run(self, batch: np.ndarray, outputs=None) -> dict[str, np.ndarray]:
        if outputs is not None and list(outputs) != self.layers:
            raise ValueError(f"engine compiled for {self.layers}, asked for {list(outputs)}")
        out = {name: np.empty((len(batch), *view.shape[1:]), np.float32)
               for name, view in self.regions[0][1].items()}
        for start in range(0, len(batch), self.count * self.per):
            chunk = batch[start:start + self.count * self.per]
            bounds = start + np.linspace(0, len(chunk), self.count + 1).round().astype(int)
            busy, failed = [], None
            for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
                if b > a:
                    self.regions[i][0][:b - a] = batch[a:b]
                    try:
                        self._send(i, int(b - a))
                    except ResnetError as e:
                        failed = failed or e
                        continue
                    busy.append((i, a, b))
            for i, a, b in busy:  # every answer read, so that none is left for a next batch
                try:
                    self._answer(i)
                except ResnetError as e:
                    failed = failed or e
                    continue
                for name, view in self.regions[i][1].items():
                    out[name][a:b] = view[:b - a]
            if failed:
                raise failed
        return out

    def close(self) -> None:
        self._finalizer()
