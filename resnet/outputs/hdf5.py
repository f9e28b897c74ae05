"""HDF5 (the default): features.h5 with a dataset per layer, `images` and `labels`.

Every HDF5 file read here (load_features, merge's shards, the file a resume reopens) is
opened through `resnet.common.hdf5.open_checked`, which refuses datasets and links that
read outside the file. h5py opens files by name and follows links, so a new features.h5 is
created inside a private folder and renamed into place (a rename replaces a link planted
under that name, never its target); a resume reopens only a regular file, never a link.

HDF5 corrupts its file when a write fails half-way (a full disk), so before each batch the
sink reserves the bytes that batch can make the file grow by (outputs/space.py `reserve`)
and stops with one line naming the folder when they are not there; what was committed
stays readable and --resume continues once space is freed.
"""
from __future__ import annotations

import json
import os
import stat

import numpy as np

from resnet.common.files import atomic_path, is_same_file, private_dir
from resnet.common.hdf5 import open_checked
from resnet.errors import ResnetError
from resnet.outputs import FORMATS, growing, space
from resnet.outputs.base import Features, Sink, utf8

H5_NAME = "features.h5"
#: seconds between durable points with compression: a compressed chunk rewritten at a durable
#: point moves (and the old copy's space is never reused, see below), so flushing every second
#: would leave several dead copies of each chunk in the file
COMPRESSED_COMMIT_EVERY = 30.0
#: --compression -> h5py dataset options (the shuffle filter groups the bytes of each float
#: position together, which is what lets gzip find repeats in float data)
FILTERS = {"none": {}, "lzf": {"compression": "lzf", "shuffle": True},
           "gzip": {"compression": "gzip", "compression_opts": 4, "shuffle": True}}
#: HDF5's chunk cache per dataset (its default, stated: the dirty chunks it may hold are
#: written later, so each reservation counts them)
CHUNK_CACHE = 1 << 20
#: room reserved on top of the data for the metadata a batch and a flush can write
META_ROOM = 1 << 20
#: features datasets are read lazily, row by row: no size limit on opening them
NO_LIMIT = 1 << 62


@FORMATS.register("hdf5")
class HDF5Sink(Sink):
    """One dataset per layer, (N, *shape) in the run's dtype, plus `images` and `labels`,
    grown per batch.

    The file is flushed at every durable point; on resume every dataset is cut back to the
    journal's row count, so rows of a batch that was cut short are written again.
    """

    files = (H5_NAME,)
    byte_identical_resume = False

    def __init__(self, output_dir, layers, meta, rows=0, saved=None):
        super().__init__(output_dir, layers, meta, rows)
        self.file = None
        path = self.path(H5_NAME)
        if saved is not None:
            self.file = _reopen(path, layers, rows)
            for name in (*layers, "images", "labels"):  # only ever shorter: checked above
                self.file[name].resize(self.count, axis=0)
            if any(self.file[name].compression for name in layers):
                self.commit_every = COMPRESSED_COMMIT_EVERY
        else:
            self._create(path, layers, meta)
        self.fd = self.file.id.get_vfd_handle()
        self.compressed = any(self.file[name].compression for name in layers)
        self.flushed = 0  # bytes of the file written out at the last flush

    def _create(self, path, layers, meta):
        """A new features.h5, made in a private folder and renamed into place."""
        import h5py

        if os.path.isdir(path) and not os.path.islink(path):
            raise ResnetError(f"{path}: is a directory, expected the file this run writes")
        with private_dir(self.output_dir) as private:
            tmp = os.path.join(private, H5_NAME)
            # freed file space is never reused: a compressed chunk rewritten after a durable
            # point moves, and reusing its old place could overwrite rows the last durable
            # metadata still points to (then a kill -9 would corrupt them)
            self.file = h5py.File(tmp, "w", fs_strategy="none", rdcc_nbytes=CHUNK_CACHE)
            try:
                space.reserve(self.file.id.get_vfd_handle(), META_ROOM, self.output_dir)
                self._layout(layers, meta)
                self.file.flush()
                os.rename(tmp, path)
                if not is_same_file(path, self.file.id.get_vfd_handle()):
                    raise ResnetError(f"{path}: replaced by someone else while this run "
                                      "created it; refused")
            except BaseException:
                self.file.close()
                raise

    def _layout(self, layers, meta):
        import h5py

        dtype = np.dtype(meta.get("dtype", "float32"))
        filters = FILTERS[meta.get("compression", "none")]
        if filters:  # each durable point rewrites the partial chunk elsewhere: not every second
            self.commit_every = COMPRESSED_COMMIT_EVERY
        for name, shape in layers.items():
            row = int(np.prod(shape)) * dtype.itemsize
            # chunks of whole rows, about 1 MiB: one image is read (and decompressed) by
            # reading one chunk, never the file
            rows = max(1, min(256, (1 << 20) // row))
            self.file.create_dataset(name, shape=(0, *shape), maxshape=(None, *shape),
                                     dtype=dtype, chunks=(rows, *shape), **filters)
        # fixed-length UTF-8: variable-length strings live in HDF5's global heap, which a
        # killed run can leave corrupt ("bad heap index" on resume); chunks survive a kill
        self.file.create_dataset("images", shape=(0,), maxshape=(None,), chunks=(1024,),
                                 dtype=h5py.string_dtype("utf-8", max(1, meta["key_bytes"])))
        self.file.create_dataset("labels", shape=(0,), maxshape=(None,), dtype="i8",
                                 chunks=(1024,))
        for key, value in meta.items():
            self.file.attrs[key] = json.dumps(value) if isinstance(value, (dict, list)) else value

    @classmethod
    def check_saved(cls, output_dir, layers, rows, saved):
        """features.h5 a regular file whose datasets hold at least the recorded rows."""
        path = os.path.join(output_dir, H5_NAME)
        _check_regular(path, rows)
        f = open_checked(path, "r", NO_LIMIT)
        try:
            _check_datasets(f, path, layers, rows)
        finally:
            f.close()

    def _reserve(self, n0, n1):
        """Room for rows n0..n1-1: every chunk they touch (compressed: rewritten whole),
        the dirty chunks the cache may still hold, and metadata."""
        import h5py

        need = META_ROOM
        for ds in self.file.values():
            if not isinstance(ds, h5py.Dataset) or not ds.chunks:
                continue
            row = int(np.prod(ds.shape[1:])) * ds.dtype.itemsize
            chunk = ds.chunks[0] * row
            touched = (n1 - 1) // ds.chunks[0] - n0 // ds.chunks[0] + 1
            need += touched * chunk * (2 if self.compressed else 1)
            need += min(CHUNK_CACHE, n0 * row + chunk)
        space.reserve(self.fd, self._size() + need, self.output_dir, self.flushed)

    def _size(self) -> int:
        return max(self.file.id.get_filesize(), os.fstat(self.fd).st_size)

    def write(self, items, outputs):
        n0, n1 = self.count, self.count + len(items)
        if n1 == n0:
            return
        self._reserve(n0, n1)  # before HDF5 is handed anything to write
        columns = {name: outputs[name] for name in self.layers}
        columns["images"] = [utf8(it.key) for it in items]
        columns["labels"] = [-1 if it.label is None else it.label for it in items]
        for name, values in columns.items():
            ds = self.file[name]
            ds.resize(n1, axis=0)
            ds[n0:n1] = values
        self.count = n1

    def flush(self):
        self.file.attrs["count"] = self.count
        self.file.flush()
        self.flushed = self._size()

    def close(self):
        if self.file:
            self.flush()
            keep = os.dup(self.fd)
            try:
                self.file.close()
                space.release(keep)  # the reserved blocks past its end go back
            finally:
                os.close(keep)
            self.file = None


    @classmethod
    def read(cls, path: str) -> Features:
        path = os.path.join(path, H5_NAME) if os.path.isdir(path) else path
        f = open_checked(path, "r", NO_LIMIT)
        missing = [k for k in ("images", "labels") if k not in f]
        if missing:
            f.close()
            raise ResnetError(f"{path}: no '{missing[0]}' dataset; not a features file of "
                              "this program")
        layers = {k: f[k] for k in f if k not in ("images", "labels")}  # h5py: lazy datasets

        def images():
            return [s.decode("utf-8", "surrogateescape") if isinstance(s, bytes) else s
                    for s in f["images"][:]]

        return Features(images, layers, lambda: f["labels"][:], f.close)

    @classmethod
    def merge(cls, sources, folder):
        _merge_hdf5([os.path.join(f, H5_NAME) for f in sources], os.path.join(folder, H5_NAME))


def _merge_hdf5(sources, target, block=256):
    """Copy shard rows into one file, block by block so memory stays small."""
    import h5py

    with atomic_path(target) as tmp, open_checked(sources[0], "r", NO_LIMIT) as first, \
            h5py.File(tmp, "w") as dst:
        lengths = []
        for src in sources:
            with open_checked(src, "r", NO_LIMIT) as f:
                lengths.append(f["images"].shape[0])
        total = sum(lengths)
        widest = {}  # fixed-length string datasets: the widest of all shards
        for src in sources:
            with open_checked(src, "r", NO_LIMIT) as f:
                for name, ds in f.items():
                    if ds.dtype.kind == "S":
                        widest[name] = max(widest.get(name, 1), ds.dtype.itemsize)
        for name, ds in first.items():
            dtype = h5py.string_dtype("utf-8", widest[name]) if name in widest else ds.dtype
            dst.create_dataset(name, shape=(total, *ds.shape[1:]), dtype=dtype,
                               chunks=ds.chunks, maxshape=(None, *ds.shape[1:]),
                               compression=ds.compression, compression_opts=ds.compression_opts,
                               shuffle=ds.shuffle)
        for key, value in first.attrs.items():
            dst.attrs[key] = value
        dst.attrs["count"] = total
        offset = 0
        for src, n in zip(sources, lengths):
            with open_checked(src, "r", NO_LIMIT) as f:
                for name in first:
                    for i in range(0, n, block):
                        j = min(n, i + block)
                        dst[name][offset + i:offset + j] = f[name][i:j]
            offset += n


def _check_regular(path: str, rows: int) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ResnetError(f"{path}: missing, though {rows} rows were recorded; "
                          f"{growing.AGAIN}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ResnetError(f"{path}: not a regular file (a link or other object where this "
                          f"run wrote its file); {growing.AGAIN}")


def _check_datasets(f, path: str, layers: dict, rows: int) -> None:
    """Each layer's dataset (of its shape), `images` and `labels` hold at least `rows` rows."""
    import h5py

    for name in (*layers, "images", "labels"):
        ds = f.get(name)
        if not isinstance(ds, h5py.Dataset) or not ds.shape:
            raise ResnetError(f"{path}: no dataset '{name}'; {growing.AGAIN}")
        if name in layers and tuple(ds.shape[1:]) != tuple(layers[name]):
            raise ResnetError(f"{path}: dataset '{name}' has rows of shape {ds.shape[1:]}, "
                              f"not {tuple(layers[name])}; {growing.AGAIN}")
        if ds.shape[0] < rows:
            raise ResnetError(f"{path}: dataset '{name}' has {ds.shape[0]} rows, but {rows} "
                              f"were recorded; {growing.AGAIN}")


def _reopen(path: str, layers: dict, rows: int):
    """This run's features.h5 open to append (--resume): a regular file, never a link, that
    passed open_checked and holds the recorded rows."""
    _check_regular(path, rows)
    f = open_checked(path, "r+", NO_LIMIT)
    try:
        if not is_same_file(path, f.id.get_vfd_handle()):
            raise ResnetError(f"{path}: replaced while this run opened it; refused")
        _check_datasets(f, path, layers, rows)
    except BaseException:
        f.close()
        raise
    return f
