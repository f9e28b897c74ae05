"""Parquet: OUTPUT_DIR/features.parquet/, a folder of part files that pandas, pyarrow, DuckDB
and Spark read as one table.

Columns: `path` (as given in the list), `label` (-1 where none) and one column per layer, a
fixed-size list of the layer's flattened values (float32 or float16); the layer shapes, the
pooling and the model are in the schema metadata (`resnet` key, JSON). Rows are buffered into
row groups of about 8 MB (memory stays flat) and appended to the open part. A Parquet file is
readable only once closed, so each durable point closes the open part (written inside a
private folder the run made, `.resnet-tmp-*`, fsynced, renamed into place): a kill loses at
most the open part, which --resume redoes. pyarrow opens files by name, following links, so
a part is never written under a name someone else could have planted.
Durable points come every `commit_every` seconds (30), so a part holds ~30 s of images.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np

from resnet.common.files import PRIVATE_PREFIX, concat
from resnet.errors import ResnetError
from resnet.outputs import FORMATS, growing
from resnet.outputs.base import Features, Sink, read_dtype, read_shapes

DIR_NAME = "features.parquet"
ROW_GROUP_BYTES = 8 << 20  # what reading one row costs: one row group of one column


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ResnetError('--format=parquet needs pyarrow: pip install -e ".[parquet]" in this '
                          "repository (or: pip install pyarrow)") from None
    return pa, pq


def part_name(i: int) -> str:
    return f"part-{i:05d}.parquet"


def part_number(name: str) -> int | None:
    """k of a finished part's name part-k.parquet (k has 5 digits or more), else None."""
    digits = name[5:-8]
    ok = name.startswith("part-") and name.endswith(".parquet") and digits.isdigit()
    return int(digits) if ok else None


def part_files(folder: str) -> list[str]:
    """The finished part files of a features.parquet folder, in order (by number: a run of
    100,000 parts or more has wider numbers)."""
    numbered = sorted((part_number(n), n) for n in os.listdir(folder)
                      if part_number(n) is not None)
    return [os.path.join(folder, n) for _, n in numbered]


def schema(layers: dict, meta: dict, dtype):
    """The Arrow schema of a run's parts: path, label, one fixed-size list per layer; the
    shapes and settings in the `resnet` metadata key."""
    pa, _ = _pa()
    value = pa.float16() if np.dtype(dtype) == np.float16 else pa.float32()
    fields = [pa.field("path", pa.string()), pa.field("label", pa.int64())]
    fields += [pa.field(name, pa.list_(value, int(np.prod(shape))))
               for name, shape in layers.items()]
    doc = {"layers": {k: list(v) for k, v in layers.items()}, **meta}
    return pa.schema(fields, metadata={"resnet": json.dumps(doc)})


def table(schema, items, outputs: dict, dtype):
    """One batch of rows (items in list order, their outputs per layer) as an Arrow table."""
    pa, _ = _pa()
    # a path with undecodable bytes (surrogate-escaped) is kept readable as \xNN
    columns = [pa.array([it.key.encode("utf-8", "surrogateescape").decode(
                   "utf-8", "backslashreplace") for it in items], pa.string()),
               pa.array([-1 if it.label is None else it.label for it in items], pa.int64())]
    for name in schema.names[2:]:
        flat = np.ascontiguousarray(outputs[name], dtype).reshape(len(items), -1)
        columns.append(pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)),
                                                         flat.shape[1]))
    return pa.Table.from_arrays(columns, schema=schema)


def group_rows(layers: dict, dtype) -> int:
    """Rows per row group: about ROW_GROUP_BYTES each."""
    row = sum(int(np.prod(s)) for s in layers.values()) * np.dtype(dtype).itemsize + 64
    return max(1, ROW_GROUP_BYTES // row)


@FORMATS.register("parquet")
class ParquetSink(Sink):
    files = (DIR_NAME,)
    commit_every = 30.0
    part_dir = DIR_NAME  # parallel workers' part files are this format's output as they are

    @classmethod
    def check_available(cls):
        _pa()
    byte_identical_resume = False  # the parts split where the durable points fell

    def __init__(self, output_dir, layers, meta, rows=0, saved=None):
        super().__init__(output_dir, layers, meta, rows)
        self.pa, self.pq = _pa()
        self.folder = self.path(DIR_NAME)
        self.dtype = np.dtype(meta.get("dtype", "float32"))
        self.parts = (saved or {}).get("parts", 0)
        missing = [part_name(i) for i in range(self.parts)
                   if not os.path.exists(os.path.join(self.folder, part_name(i)))]
        if missing:
            raise ResnetError(f"{self.folder}: {', '.join(missing[:3])} missing, though "
                              f"{self.parts} parts were recorded; pass --overwrite to start again")
        os.makedirs(self.folder, exist_ok=True)
        for name in os.listdir(self.folder):  # past the durable point: redone by this run
            number = part_number(name)
            if name.startswith(".") or (number is not None and number >= self.parts):
                remove_entry(os.path.join(self.folder, name))
        self.schema = schema(layers, meta, self.dtype)
        self.group_rows = group_rows(layers, self.dtype)
        self.pending, self.pending_rows = [], 0
        self.writer = self.tmp = None
        self.private = tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=self.folder)

    @classmethod
    def check_saved(cls, output_dir, layers, rows, saved):
        """The recorded parts all there, regular files, holding exactly the recorded rows."""
        where = os.path.join(output_dir, "progress.json")
        folder = os.path.join(output_dir, DIR_NAME)
        parts = growing.number(saved.get("parts"), where, "sink.parts")
        total = 0
        _, pq = _pa()
        for i in range(parts):
            path = os.path.join(folder, part_name(i))
            growing.check(path, 1, None)
            try:
                total += pq.read_metadata(path).num_rows
            except Exception as e:  # pyarrow's own errors for a damaged footer
                raise ResnetError(f"{path}: unreadable Parquet part ({str(e)[:200]}); "
                                  f"{growing.AGAIN}") from None
            if total > rows:
                break
        if total != rows:
            raise ResnetError(f"{folder}: its first {parts} parts hold {total} rows or more, "
                              f"but {rows} were recorded; {growing.AGAIN}"
                              if total > rows else
                              f"{folder}: its {parts} parts hold {total} rows, but {rows} "
                              f"were recorded; {growing.AGAIN}")

    def write(self, items, outputs):
        self.pending.append(table(self.schema, items, outputs, self.dtype))
        self.pending_rows += len(items)
        self.count += len(items)
        if self.pending_rows >= self.group_rows:
            self._write_group()

    def _write_group(self):
        if not self.pending:
            return
        if self.writer is None:  # in the private folder: nobody else can link a name there
            self.tmp = os.path.join(self.private, part_name(self.parts))
            self.writer = self.pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
        self.writer.write_table(self.pa.concat_tables(self.pending),
                                row_group_size=self.pending_rows)
        self.pending, self.pending_rows = [], 0

    def flush(self):
        """Close the open part: everything written so far is durable in finished parts."""
        self._write_group()
        if self.writer is not None:
            self.writer.close()
            with open(self.tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(self.tmp, os.path.join(self.folder, part_name(self.parts)))
            self.writer, self.parts = None, self.parts + 1

    def state(self):
        return {"parts": self.parts}

    def close(self):
        try:
            self.flush()
        finally:
            shutil.rmtree(self.private, ignore_errors=True)

    @classmethod
    def read(cls, path: str) -> Features:
        folder = path if os.path.basename(os.path.normpath(path)) == DIR_NAME else \
            os.path.join(path, DIR_NAME)
        parts = part_files(folder)
        run = os.path.dirname(os.path.abspath(folder))
        shapes, dtype = read_shapes(run), read_dtype(run)
        if parts and not shapes:  # a folder on its own: the schema carries the shapes
            _, pq = _pa()
            doc = json.loads(pq.read_schema(parts[0]).metadata[b"resnet"])
            shapes = {k: tuple(v) for k, v in doc["layers"].items()}
            dtype = np.dtype(doc.get("dtype", "float32"))
        table = PartsTable(parts)
        layers = {k: ParquetColumn(table, k, shape, dtype) for k, shape in shapes.items()}
        return Features(lambda: table.column("path"), layers,
                        lambda: np.asarray(table.column("label"), np.int64))

    @classmethod
    def merge(cls, sources, folder):
        target = os.path.join(folder, DIR_NAME)
        os.makedirs(target, exist_ok=True)
        paths = [path for src in sources for path in part_files(os.path.join(src, DIR_NAME))]
        for n, path in enumerate(paths):
            concat([path], os.path.join(target, part_name(n)))


def remove_entry(path: str) -> None:
    """Remove a leftover in a parts folder: a file, a link (never what it points to) or a
    killed run's private folder."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def read_part(path: str, layers: dict, dtype) -> tuple[list, list, dict]:
    """One part file whole: (paths, labels, {layer: (rows, *shape) array})."""
    _, pq = _pa()
    t = pq.read_table(path)
    arrays = {name: np.asarray(t.column(name).combine_chunks().flatten().to_numpy(
                  zero_copy_only=False), dtype).reshape(t.num_rows, *shape)
              for name, shape in layers.items()}
    return t.column("path").to_pylist(), t.column("label").to_pylist(), arrays


class PartsTable:
    """The part files as one table, read a row group at a time (never the whole table)."""

    def __init__(self, parts: list[str]):
        _, self.pq = _pa()
        self.parts = parts  # opened per read: a long run has thousands of parts
        self.groups = []  # (part index, row group index, first row, rows)
        start = 0
        for i, path in enumerate(parts):
            meta = self.pq.read_metadata(path)
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                self.groups.append((i, g, start, n))
                start += n
        self.rows = start
        self.starts = np.array([s for _, _, s, _ in self.groups], np.int64)

    def column(self, name: str) -> list:
        out = []
        for path in self.parts:
            out += self.pq.read_table(path, columns=[name]).column(0).to_pylist()
        return out

    def read_rows(self, name: str, lo: int, hi: int):
        """Rows lo..hi-1 of a column, reading only the row groups they lie in."""
        chunks = []
        first = int(np.searchsorted(self.starts, lo, side="right")) - 1
        for i, g, start, n in self.groups[max(first, 0):]:
            if start >= hi:
                break
            with self.pq.ParquetFile(self.parts[i]) as f:
                col = f.read_row_group(g, columns=[name]).column(0)
            chunks.append(col.slice(max(lo - start, 0), min(hi, start + n) - max(lo, start)))
        return chunks


class ParquetColumn:
    """One layer of a Parquet run as a lazy (N, *shape) array: indexing reads only the row
    groups it needs; np.asarray(column) reads the whole column."""

    def __init__(self, table: PartsTable, name: str, shape: tuple, dtype):
        self.table, self.name, self.dtype = table, name, np.dtype(dtype)
        self.shape = (table.rows, *shape)

    def __len__(self) -> int:
        return self.shape[0]

    def _rows(self, lo: int, hi: int) -> np.ndarray:
        size = int(np.prod(self.shape[1:]))
        flat = [np.asarray(c.combine_chunks().flatten().to_numpy(zero_copy_only=False),
                           self.dtype) for c in self.table.read_rows(self.name, lo, hi)]
        data = np.concatenate(flat) if flat else np.zeros(0, self.dtype)
        return data.reshape(-1, *self.shape[1:]) if size else data

    def __getitem__(self, index):
        n = len(self)
        if isinstance(index, (int, np.integer)):
            i = int(index) + (n if index < 0 else 0)
            if not 0 <= i < n:
                raise IndexError(f"row {index} out of range for {n} rows")
            return self._rows(i, i + 1)[0]
        if isinstance(index, slice) and index.step in (None, 1):
            lo, hi, _ = index.indices(n)
            return self._rows(lo, max(lo, hi))
        return np.asarray(self)[index]

    def __array__(self, dtype=None, copy=None):
        data = self._rows(0, len(self))
        return data.astype(dtype) if dtype is not None else data
