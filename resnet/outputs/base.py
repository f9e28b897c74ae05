"""The Sink contract every output format honours, and what all formats share.

A format is one file in this folder: a Sink subclass registered in FORMATS. The contract
(checked for every registered format by tests/test_output_contract.py):

- `write(items, outputs)` appends a batch in list order; `flush()` makes everything written
  so far durable; `state()` then returns what the journal needs to cut the files back to
  exactly that point; a sink opened with `rows` and that `saved` state truncates its files
  there and appends after it (this is --resume, after any crash or kill -9); before that,
  `check_saved` compares the files with the recorded state and refuses any mismatch, and no
  file is ever extended to a recorded size.
- `files` / `owns(name)`: the names a run of this format writes into its output folder.
- `read(folder)` returns the Features a run wrote; `merge(sources, folder)` joins complete
  shard folders into `folder`, in order.
"""
from __future__ import annotations

import os

import numpy as np

from resnet.common.files import existing_ancestor
from resnet.errors import ResnetError
from resnet.outputs.formats import FORMATS

MANIFEST = "manifest.json"  # written by the journal; holds the layer shapes


class Sink:
    """Base: `write` batches, `flush` them durably, report `state()` for the journal, `close`.

    `rows` and `saved` (an earlier run's `state()`, from the journal) make the sink cut its
    files back to that durable point and append after it, which is what --resume relies on.
    """

    files: tuple = ()
    #: whether a killed-and-resumed run leaves files byte-identical to an uninterrupted one
    #: (HDF5 does not: its chunk layout remembers the resize history; its values still match)
    byte_identical_resume: bool = True

    @classmethod
    def owns(cls, name: str) -> bool:
        """Whether `name` in an output folder is one of this format's files."""
        return name in cls.files

    #: seconds between durable points (a format whose flush closes a file wants fewer)
    commit_every: float = 1.0
    #: where the Parquet part files that parallel workers write (outputs/parts.py) are this
    #: format's output as they are; None: they are staged, then streamed into this format
    part_dir: str | None = None

    @classmethod
    def check_available(cls) -> None:
        """Raise a ResnetError now if this format cannot be written here (a missing package)."""

    @classmethod
    def bytes_per_row(cls, shapes: dict, dtype: str) -> int:
        """The expected bytes one image takes, uncompressed (the disk check's estimate)."""
        return sum(int(np.prod(s)) for s in shapes.values()) * np.dtype(dtype).itemsize

    @classmethod
    def check_saved(cls, output_dir: str, layers: dict, rows: int, saved: dict) -> None:
        """Before --resume changes anything: refuse, in one line naming the file, files that
        do not hold the `rows` rows and the state `saved` (an earlier `state()`) records."""

    @classmethod
    def read(cls, path: str) -> "Features":
        raise NotImplementedError

    @classmethod
    def merge(cls, sources: list[str], folder: str) -> None:
        """Join the outputs of complete shard folders `sources` into `folder`, in order."""
        raise NotImplementedError

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


def open_sink(fmt: str, output_dir: str, layers: dict[str, tuple], meta: dict, rows: int = 0,
              saved: dict | None = None) -> Sink:
    return FORMATS[fmt](output_dir, layers, meta, rows, saved)


def existing_outputs(fmt: str, output_dir: str) -> list[str]:
    """Names in output_dir that a run of this format writes."""
    if not os.path.isdir(output_dir):
        return []
    return [n for n in os.listdir(output_dir) if FORMATS[fmt].owns(n)]


def check_writable(output_dir: str) -> None:
    """Refuse an output folder that cannot be created or written, without creating it: a run
    that fails a later check must leave nothing behind."""
    folder = existing_ancestor(output_dir)
    why = None
    if not os.path.isdir(folder):
        why = f"{folder} is not a directory"
    elif read_only(folder):  # os.access says no on it too: say the real reason
        why = f"{folder}: read-only file system"
    elif not os.access(folder, os.W_OK | os.X_OK):
        why = f"{folder}: permission denied"
    if why:
        raise ResnetError(f"{output_dir}: cannot write output directory ({why})")


def read_only(folder: str) -> bool:
    """Whether `folder` lies on a file system mounted read-only."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


class Features:
    """What a run wrote, read back: rows in run order.

    `images` (paths as given; pickle: basenames), `labels` (-1 where the list gave none),
    one (N, *shape) array per layer (`feats[name]`, `feats.keys()`), `len(feats)` rows.
    HDF5 and Parquet arrays are lazy: `feats[name][i]` reads one row's chunk or row group,
    never the file, and `images` / `labels` are read on first use. Pickle and text (the v1
    formats) are read whole. Close it (or use `with`) to release an open file.
    """

    def __init__(self, images, layers: dict, labels=None, closer=None):
        self._images, self._labels, self.layers, self._closer = images, labels, layers, closer

    @staticmethod
    def _value(v):
        return v() if callable(v) else v

    @property
    def images(self) -> list:
        self._images = self._value(self._images)
        return self._images

    @property
    def labels(self) -> np.ndarray:
        if self._labels is None:
            return np.full(len(self), -1, np.int64)
        self._labels = self._value(self._labels)
        return self._labels

    def __getitem__(self, name):
        return self.layers[name]

    def keys(self):
        return self.layers.keys()

    def __len__(self) -> int:
        first = next(iter(self.layers.values()), None)
        return len(first) if first is not None else len(self.images)

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
            self._closer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_manifest(folder: str) -> dict:
    """An output folder's manifest ({} when it has none), bounded in size and depth."""
    from resnet.common import jsonread

    path = os.path.join(folder, MANIFEST)
    if not os.path.lexists(path):
        return {}
    doc = jsonread.load(path)
    if not isinstance(doc, dict):
        raise ResnetError(f"{path}: not a manifest (expected a JSON object)")
    return doc


def read_shapes(folder: str) -> dict[str, tuple]:
    """The layer shapes a run recorded in its manifest ({} when there is none)."""
    return {k: tuple(v) for k, v in read_manifest(folder).get("layers", {}).items()}


def read_dtype(folder: str) -> np.dtype:
    return np.dtype(read_manifest(folder).get("dtype", "float32"))


def key_bytes(items) -> int:
    """The longest image key in UTF-8 bytes (the width of HDF5's fixed-length `images`)."""
    return max((len(utf8(it.key)) for it in items), default=1)


def utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")
