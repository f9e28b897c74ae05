"""HDF5 (the default): features.h5 with a dataset per layer, `images` and `labels`."""
from __future__ import annotations

import json
import os

import numpy as np

from resnet.common.files import atomic_path
from resnet.errors import ResnetError
from resnet.outputs import FORMATS
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
            if any(self.file[name].compression for name in layers):
                self.commit_every = COMPRESSED_COMMIT_EVERY
            return
        # freed file space is never reused: a compressed chunk rewritten after a durable
        # point moves, and reusing its old place could overwrite rows the last durable
        # metadata still points to (then a kill -9 would corrupt them)
        self.file = h5py.File(path, "w", fs_strategy="none")
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

    def write(self, items, outputs):
        n0, n1 = self.count, self.count + len(items)
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

    def close(self):
        if self.file:
            self.flush()
            self.file.close()
            self.file = None


    @classmethod
    def read(cls, path: str) -> Features:
        import h5py

        path = os.path.join(path, H5_NAME) if os.path.isdir(path) else path
        f = h5py.File(path, "r")
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

    with atomic_path(target) as tmp, h5py.File(sources[0], "r") as first, \
            h5py.File(tmp, "w") as dst:
        lengths = []
        for src in sources:
            with h5py.File(src, "r") as f:
                lengths.append(f["images"].shape[0])
        total = sum(lengths)
        widest = {}  # fixed-length string datasets: the widest of all shards
        for src in sources:
            with h5py.File(src, "r") as f:
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
            with h5py.File(src, "r") as f:
                for name in first:
                    for i in range(0, n, block):
                        j = min(n, i + block)
                        dst[name][offset + i:offset + j] = f[name][i:j]
            offset += n
