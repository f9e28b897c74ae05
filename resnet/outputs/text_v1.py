"""v1's C++-style text: features.txt (layers split by ';', values by spaces), images.txt."""
from __future__ import annotations

import os

import numpy as np

from resnet.common.files import concat
from resnet.outputs import FORMATS
from resnet.outputs.base import Features, Sink, read_dtype, read_shapes

TEXT_NAME = "features.txt"
IMAGES_NAME = "images.txt"


@FORMATS.register("text")
class TextSink(Sink):
    """v1 C++ style: `features.txt`, one line per image, layers split by ';', values by spaces.

    `images.txt` holds the image of each line, in the same order; the manifest the shapes.
    """

    files = (TEXT_NAME, IMAGES_NAME)

    @classmethod
    def bytes_per_row(cls, shapes, dtype):
        return sum(int(np.prod(s)) for s in shapes.values()) * 13  # "%.9g " averages ~13

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


    @classmethod
    def read(cls, path: str) -> Features:
        folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
        shapes, dtype = read_shapes(folder), read_dtype(folder)
        with open(os.path.join(folder, IMAGES_NAME), encoding="utf-8") as f:
            images = f.read().splitlines()
        rows = {name: [] for name in shapes}
        with open(os.path.join(folder, TEXT_NAME), encoding="utf-8") as f:
            for line in f:
                for name, part in zip(shapes, line.rstrip("\n").split(";")):
                    rows[name].append(np.array(part.split(), dtype=np.float32))
        return Features(images, {k: (np.stack(v).reshape(-1, *shapes[k]) if v else
                                     np.zeros((0, *shapes[k]), np.float32)).astype(dtype)
                                 for k, v in rows.items()})

    @classmethod
    def merge(cls, sources, folder):
        for name in cls.files:
            concat([os.path.join(f, name) for f in sources], os.path.join(folder, name))
