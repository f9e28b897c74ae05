"""Where features go: HDF5 (default), v1 pickle batches, or v1 C++-style text; and reading back.

Every sink streams: it writes each batch as it comes, so memory does not grow with the
number of images.
"""
from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field

import numpy as np

from . import safepickle
from .errors import ResnetError

FORMATS = ("hdf5", "pickle", "text")
H5_NAME = "features.h5"
TEXT_NAME = "features.txt"
IMAGES_NAME = "images.txt"
META_NAME = "manifest.json"  # written by the journal; holds the layer shapes
PICKLE_BATCH = 10000  # images per v1 batch_N file


class Sink:
    """Base: `write` batches, `flush` them durably, report `state()` for the journal, `close`.

    `rows` and `saved` (an earlier run's `state()`, from the journal) make the sink cut its
    files back to that durable point and append after it, which is what --resume relies on.
    """

    files: tuple = ()

    def __init__(self, output_dir: str, layers: dict[str, tuple], meta: dict, rows: int = 0,
                 saved: dict | None = None):
        self.output_dir = output_dir
        self.layers = layers
        self.meta = meta
        self.count = rows

    def path(self, name: str) -> str:
        return os.path.join(self.output_dir, name)

    def write(self, items, outputs: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        pass

    def state(self) -> dict:
        """Byte sizes / positions to truncate back to if the run is resumed from here."""
        return {}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class HDF5Sink(Sink):
    """One float32 dataset per layer, (N, *shape), plus `images` and `labels`, grown per batch.

    The file is flushed after every batch; on resume every dataset is cut back to the
    journal's row count, so rows of a batch that was cut short are written again.
    """

    files = (H5_NAME,)

    def __init__(self, output_dir, layers, meta, rows=0, saved=None):
        import h5py

        super().__init__(output_dir, layers, meta, rows)
        path = self.path(H5_NAME)
        if saved is not None and not os.path.exists(path):
            raise ResnetError(f"{path}: missing, though {rows} rows were recorded; "
                              "pass --overwrite to start again")
        if saved is not None:
            try:
                self.file = h5py.File(path, "r+")
            except OSError as e:
                raise ResnetError(f"{path}: cannot reopen to resume ({e}); pass --overwrite "
                                  "to start again") from None
            for name in (*layers, "images", "labels"):
                self.file[name].resize(self.count, axis=0)
            return
        self.file = h5py.File(path, "w")
        for name, shape in layers.items():
            row = int(np.prod(shape)) * 4
            rows = max(1, min(256, (1 << 20) // row))  # about 1 MiB chunks
            self.file.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape),
                                     dtype="f4", chunks=(rows, *shape))
        # fixed-length UTF-8: variable-length strings live in HDF5's global heap, which a
        # killed run can leave corrupt ("bad heap index" on resume); chunks survive a kill
        self.file.create_dataset("images", shape=(0,), maxshape=(None,), chunks=(1024,),
                                 dtype=h5py.string_dtype("utf-8", max(1, meta["key_bytes"])))
        self.file.create_dataset("labels", shape=(0,), maxshape=(None,), dtype="i8",
                                 chunks=(1024,))
        for key, value in meta.items():
            self.file.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value

    def write(self, items, outputs):
        n0, n1 = self.count, self.count + len(items)
        columns = {name: outputs[name] for name in self.layers}
        columns["images"] = [_utf8(it.key) for it in items]
        columns["labels"] = [-1 if it.label is None else it.label for it in items]
        for name, values in columns.items():
            ds = self.file[name]
            ds.resize(n1, axis=0)
            ds[n0:n1] = values
        self.count = n1

    def flush(self):
        self.file.attrs["count"] = self.count
        self.file.flush()

    def close(self):
        if self.file:
            self.flush()
            self.file.close()
            self.file = None


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def key_bytes(items) -> int:
    """The longest image key in UTF-8 bytes: the width of HDF5's fixed-length `images`."""
    return max((len(_utf8(it.key)) for it in items), default=1)


class PickleSink(Sink):
    """v1's `batch_N` files of {basename: {layer: flat float32 array}}, PICKLE_BATCH per file.

    Each file is streamed entry by entry to a temporary name and renamed when complete, so a
    finished batch file is always whole and memory holds one image at a time. As in v1, the
    keys are basenames: two images with the same basename collide and the later one wins.
    """

    def __init__(self, output_dir, layers, meta, rows=0, saved=None):
        super().__init__(output_dir, layers, meta, rows)
        saved = saved or {}
        self.batch = saved.get("batch", 0)
        self.in_batch = saved.get("in_batch", 0)
        self.file = None
        self.collisions = 0
        self.seen = set()
        if self.in_batch:  # reopen the partial batch, cut back to the durable point
            done = self.path(f"batch_{self.batch}")
            if not os.path.exists(self.tmp) and os.path.exists(done):
                os.replace(done, self.tmp)  # finished after the last durable point
            self.file = open(self.tmp, "r+b")
            self.file.truncate(saved["tmp_bytes"])
            self.file.seek(0, os.SEEK_END)

    @property
    def tmp(self) -> str:
        return self.path(f".batch_{self.batch}.tmp")

    def _open(self):
        self.file = open(self.tmp, "wb")
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
        self.seen.clear()

    def write(self, items, outputs):
        for i, item in enumerate(items):
            if self.file is None:
                self._open()
            key = os.path.basename(item.key)
            if key in self.seen:
                self.collisions += 1
            self.seen.add(key)
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
        return {"batch": self.batch, "in_batch": self.in_batch,
                "tmp_bytes": self.file.tell() if self.file is not None else 0}

    def close(self):
        if self.file is not None:
            self._finish()


class TextSink(Sink):
    """v1 C++ style: `features.txt`, one line per image, layers split by ';', values by spaces.

    `images.txt` holds the image of each line, in the same order; the manifest the shapes.
    """

    files = (TEXT_NAME, IMAGES_NAME)

    def __init__(self, output_dir, layers, meta, rows=0, saved=None):
        super().__init__(output_dir, layers, meta, rows)
        sizes = (saved or {}).get("sizes", {})
        self.text, self.images = (self._open(name, sizes.get(name, 0)) for name in self.files)

    def _open(self, name, size):
        f = open(self.path(name), "r+b" if size else "wb")
        f.truncate(size)
        f.seek(size)
        return f

    def write(self, items, outputs):
        for i, item in enumerate(items):
            parts = []
            for name in self.layers:
                row = outputs[name][i].reshape(-1)
                parts.append(" ".join(np.char.mod("%.9g", row).tolist()))
            self.text.write((";".join(parts) + "\n").encode())
            self.images.write((item.key + "\n").encode("utf-8", "surrogateescape"))
        self.count += len(items)

    def flush(self):
        for f in (self.text, self.images):
            f.flush()
            os.fsync(f.fileno())

    def state(self):
        return {"sizes": {TEXT_NAME: self.text.tell(), IMAGES_NAME: self.images.tell()}}

    def close(self):
        for f in (self.text, self.images):
            if not f.closed:
                f.close()


SINKS = {"hdf5": HDF5Sink, "pickle": PickleSink, "text": TextSink}


def open_sink(fmt: str, output_dir: str, layers: dict[str, tuple], meta: dict, rows: int = 0,
              saved: dict | None = None) -> Sink:
    return SINKS[fmt](output_dir, layers, meta, rows, saved)


def existing_outputs(fmt: str, output_dir: str) -> list[str]:
    """Names in output_dir that a run of this format writes (pickle: batch files by name)."""
    if not os.path.isdir(output_dir):
        return []
    return [n for n in os.listdir(output_dir)
            if n in SINKS[fmt].files or n.startswith(("batch_", ".batch_"))]


def check_writable(output_dir: str) -> None:
    """Refuse an output folder that cannot be created or written, without creating it: a run
    that fails a later check must leave nothing behind."""
    folder = os.path.abspath(output_dir)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    why = None
    if not os.path.isdir(folder):
        why = f"{folder} is not a directory"
    elif not os.access(folder, os.W_OK | os.X_OK):
        why = f"{folder}: permission denied"
    if why:
        raise ResnetError(f"{output_dir}: cannot write output directory ({why})")


@dataclass
class Features:
    """Features read back: `images` in run order and one (N, *shape) array per layer."""

    images: list
    layers: dict = field(default_factory=dict)

    def __getitem__(self, name):
        return self.layers[name]


def load_features(path: str) -> Features:
    """Read features written in any of the three formats (a file or the output directory)."""
    if os.path.isdir(path):
        for name in (H5_NAME, TEXT_NAME):
            if os.path.exists(os.path.join(path, name)):
                return load_features(os.path.join(path, name))
        if any(n.startswith("batch_") for n in os.listdir(path)):
            return _load_pickles(path)
        raise ResnetError(f"{path}: no features found (expected {H5_NAME}, {TEXT_NAME} or batch_N)")
    if not os.path.exists(path):
        raise ResnetError(f"{path}: not found")
    if path.endswith((".h5", ".hdf5")):
        import h5py

        with h5py.File(path, "r") as f:
            images = [s.decode("utf-8", "surrogateescape") if isinstance(s, bytes) else s
                      for s in f["images"][:]]
            layers = {k: f[k][:] for k in f if k not in ("images", "labels")}
        return Features(images, layers)
    if os.path.basename(path).startswith("batch_"):
        return _load_pickles(os.path.dirname(path) or ".", [path])
    folder = os.path.dirname(path) or "."
    shapes = _read_meta(folder)
    with open(os.path.join(folder, IMAGES_NAME), encoding="utf-8") as f:
        images = f.read().splitlines()
    rows = {name: [] for name in shapes}
    with open(path, encoding="utf-8") as f:
        for line in f:
            for name, part in zip(shapes, line.rstrip("\n").split(";")):
                rows[name].append(np.array(part.split(), dtype=np.float32))
    return Features(images, {k: np.stack(v).reshape(-1, *shapes[k]) if v else
                             np.zeros((0, *shapes[k]), np.float32) for k, v in rows.items()})


def _read_meta(folder: str) -> dict[str, tuple]:
    try:
        with open(os.path.join(folder, META_NAME), encoding="utf-8") as f:
            return {k: tuple(v) for k, v in json.load(f)["layers"].items()}
    except FileNotFoundError:
        return {}


def _load_pickles(folder: str, files=None) -> Features:
    if files is None:
        files = sorted((os.path.join(folder, n) for n in os.listdir(folder)
                        if n.startswith("batch_") and n[6:].isdigit()),
                       key=lambda p: int(os.path.basename(p)[6:]))
    shapes = _read_meta(folder)
    images, rows = [], {}
    for p in files:
        for key, layers in safepickle.load(p).items():
            images.append(key)
            for name, value in layers.items():
                rows.setdefault(name, []).append(value)
    return Features(images, {k: np.stack(v).reshape(-1, *shapes.get(k, (-1,)))
                             for k, v in rows.items()})
