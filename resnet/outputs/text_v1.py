"""v1's C++-style text: features.txt (layers split by ';', values by spaces), images.txt.

images.txt holds one image path per line; a path holding a backslash, newline, carriage
return or tab is written with backslash escapes (`\\`, `\n`, `\r`, `\t`, see
outputs/growing.py) and `read` gives it back unescaped. Ordinary paths are written as v1 did.
"""
from __future__ import annotations

import os

import numpy as np

from resnet.common.files import concat
from resnet.errors import ResnetError
from resnet.outputs import FORMATS, growing
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
        self.text = self.images = None
        sizes = (saved or {}).get("sizes", {})
        self.text, self.images = (self._open(name, sizes.get(name) if saved is not None
                                             else None) for name in self.files)

    def _open(self, name, size):
        """A fresh file (size None), or this run's file cut back to `size` bytes (--resume;
        check_saved compared it with the record already)."""
        path = self.path(name)
        if size is None or (size == 0 and not os.path.lexists(path)):
            return growing.create(path)
        return growing.reopen(path, size)

    @classmethod
    def check_saved(cls, output_dir, layers, rows, saved):
        """Both files at least as long as recorded, with the recorded last block, and one
        images.txt line per recorded row."""
        sizes, tails = saved.get("sizes"), saved.get("tails") or {}
        where = os.path.join(output_dir, "progress.json")
        if not isinstance(sizes, dict) or not isinstance(tails, dict):
            raise ResnetError(f"{where}: no byte sizes of {TEXT_NAME} and {IMAGES_NAME} "
                              f"recorded; {growing.AGAIN}")
        for name in cls.files:
            size = growing.number(sizes.get(name), where, f"sink.sizes.{name}")
            digest = growing.digest_field(tails.get(name), where, f"sink.tails.{name}")
            growing.check(os.path.join(output_dir, name), size, digest)
        images = os.path.join(output_dir, IMAGES_NAME)
        lines = growing.count_lines(images, sizes[IMAGES_NAME])
        if lines != rows:
            raise ResnetError(f"{images}: {lines} lines where {rows} rows were recorded; "
                              f"{growing.AGAIN}")

    def write(self, items, outputs):
        for i, item in enumerate(items):
            parts = []
            for name in self.layers:
                row = outputs[name][i].reshape(-1)
                parts.append(" ".join(np.char.mod("%.9g", row).tolist()))
            self.text.write((";".join(parts) + "\n").encode())
            self.images.write((growing.escape(item.key) + "\n").encode("utf-8",
                                                                       "surrogateescape"))
        self.count += len(items)

    def flush(self):
        for f in (self.text, self.images):
            f.flush()
            os.fsync(f.fileno())

    def state(self):
        files = {TEXT_NAME: self.text, IMAGES_NAME: self.images}
        return {"sizes": {name: f.tell() for name, f in files.items()},
                "tails": {name: growing.tail_digest(f.fileno(), f.tell())
                          for name, f in files.items()}}

    def close(self):
        for f in (self.text, self.images):
            if f is not None and not f.closed:
                f.close()


    @classmethod
    def read(cls, path: str) -> Features:
        folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
        shapes, dtype = read_shapes(folder), read_dtype(folder)
        with open(os.path.join(folder, IMAGES_NAME), "rb") as f:  # "\n" ends a line, no other
            lines = f.read().decode("utf-8", "surrogateescape").split("\n")
        images = [growing.unescape(line) for line in lines[:-1 if lines[-1] == "" else None]]
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
