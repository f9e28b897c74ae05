"""v1's pickle output: `batch_N` files of {basename: {layer: flat array}}."""
from __future__ import annotations

import os
import pickle

import numpy as np

from resnet.common.files import concat
from resnet.errors import ResnetError
from resnet.modelio import safepickle
from resnet.outputs import FORMATS, growing
from resnet.outputs.base import Features, Sink, read_shapes

PICKLE_BATCH = 10000  # images per v1 batch_N file


@FORMATS.register("pickle")
class PickleSink(Sink):
    """v1's `batch_N` files of {basename: {layer: flat array}}, PICKLE_BATCH per file.

    Each file is streamed entry by entry to a temporary name and renamed when complete, so a
    finished batch file is always whole and memory holds one image at a time. As in v1, the
    keys are basenames: two images with the same basename collide and the later one wins.
    """

    @classmethod
    def owns(cls, name):
        return name.startswith(("batch_", ".batch_"))

    def __init__(self, output_dir, layers, meta, rows=0, saved=None):
        super().__init__(output_dir, layers, meta, rows)
        saved = saved or {}
        self.batch = saved.get("batch", 0)
        self.in_batch = saved.get("in_batch", 0)
        self.file = None
        if self.in_batch:  # reopen the partial batch, cut back to the durable point
            done = self.path(f"batch_{self.batch}")
            if not os.path.lexists(self.tmp) and os.path.lexists(done):
                os.replace(done, self.tmp)  # finished after the last durable point
            self.file = growing.reopen(self.tmp, saved["tmp_bytes"])

    @classmethod
    def check_saved(cls, output_dir, layers, rows, saved):
        """The finished batch files all there; the partial one (its temporary file, or the
        batch file if it was finished after the durable point, never both) at least as long
        as recorded with the recorded last block; rows = whole batches + the partial one."""
        where = os.path.join(output_dir, "progress.json")
        batch = growing.number(saved.get("batch"), where, "sink.batch")
        in_batch = growing.number(saved.get("in_batch"), where, "sink.in_batch",
                                  PICKLE_BATCH - 1)
        size = growing.number(saved.get("tmp_bytes"), where, "sink.tmp_bytes")
        digest = growing.digest_field(saved.get("tail"), where, "sink.tail")
        if batch * PICKLE_BATCH + in_batch != rows:
            raise ResnetError(f"{where}: {batch} whole batches and {in_batch} rows do not make "
                              f"the recorded {rows} rows; {growing.AGAIN}")
        for n in range(batch):
            path = os.path.join(output_dir, f"batch_{n}")
            growing.check(path, 1, None)
        if not in_batch:
            return
        tmp = os.path.join(output_dir, f".batch_{batch}.tmp")
        done = os.path.join(output_dir, f"batch_{batch}")
        if os.path.lexists(tmp) and os.path.lexists(done):
            raise ResnetError(f"{tmp}: beside the finished {done}; a run never leaves both, "
                              f"so one is not this run's; {growing.AGAIN}")
        growing.check(done if os.path.lexists(done) else tmp, size, digest)

    @property
    def tmp(self) -> str:
        return self.path(f".batch_{self.batch}.tmp")

    def _open(self):
        self.file = growing.create(self.tmp)
        self.file.write(b"\x80\x02}")  # PROTO 2, EMPTY_DICT

    def _finish(self):
        self.file.write(b".")
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.path(f"batch_{self.batch}"))
        self.file = None
        self.batch += 1
        self.in_batch = 0

    def write(self, items, outputs):
        for i, item in enumerate(items):
            if self.file is None:
                self._open()
            key = os.path.basename(item.key)
            value = {name: np.ascontiguousarray(outputs[name][i]).reshape(-1)
                     for name in self.layers}
            for obj in (key, value):
                self.file.write(pickle.dumps(obj, protocol=2)[2:-1])  # no PROTO, no STOP
            self.file.write(b"s")  # SETITEM
            self.in_batch += 1
            self.count += 1
            if self.in_batch == PICKLE_BATCH:
                self._finish()

    def flush(self):
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())

    def state(self):
        size = self.file.tell() if self.file is not None else 0
        return {"batch": self.batch, "in_batch": self.in_batch, "tmp_bytes": size,
                "tail": growing.tail_digest(self.file.fileno(), size) if size else None}

    def close(self):
        if self.file is not None:
            self._finish()


    @classmethod
    def read(cls, path: str) -> Features:
        """A run's batch files in order (a folder), or one batch file."""
        folder, files = (path, batch_files(path)) if os.path.isdir(path) else \
            (os.path.dirname(path) or ".", [path])
        shapes = read_shapes(folder)
        images, rows = [], {}
        for p in files:
            for key, layers in safepickle.load(p).items():
                images.append(key)
                for name, value in layers.items():
                    rows.setdefault(name, []).append(value)
        # without a manifest (a batch file on its own) each row stays the flat array it is
        return Features(images, {k: np.stack(v).reshape(len(v), *shapes.get(k, (-1,)))
                                 for k, v in rows.items()})

    @classmethod
    def merge(cls, sources, folder):
        """The shards' batch files, renumbered in order (a shard's last batch may be short)."""
        paths = [path for src in sources for path in batch_files(src)]
        for n, path in enumerate(paths):
            concat([path], os.path.join(folder, f"batch_{n}"))


def batch_files(folder: str) -> list[str]:
    """The finished batch_N files of a folder, in N order."""
    names = [n for n in os.listdir(folder) if n.startswith("batch_") and n[6:].isdigit()]
    return [os.path.join(folder, n) for n in sorted(names, key=lambda n: int(n[6:]))]
