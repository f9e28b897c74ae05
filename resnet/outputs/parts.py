"""Part files: how many workers write one run at once and every image still lands exactly once.

The list is cut into parts of a fixed number of items (part k is items[k*rows:(k+1)*rows]),
so a part's content depends only on the list, never on which worker ran it or when. A worker
writes part k as one Parquet file under a temporary name and renames it into place, then
writes part k's done-marker (its row count and its bad images) the same way. A part is done
exactly when its marker exists: a worker retried after a node died rewrites the same name
with the same rows, and --resume redoes only the parts without a marker, so no row is ever
written twice and none is lost. The rows of parts 0, 1, 2, ... in order are the list order.

The markers live in OUTPUT_DIR/parts/. Where the format is Parquet the part files are the
output (features.parquet/part-k.parquet); for other formats they are staged in parts/ too and
streamed, one part at a time, into the format's sink. parts/ is removed once the run is done.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass

from resnet.common.files import atomic_path, atomic_write
from resnet.errors import ResnetError
from resnet.outputs import FORMATS, parquet

STAGE = "parts"
#: decoded pixels per part (the object a decoding task hands to an engine worker)
PART_BYTES = 24 << 20
#: list items per part, overriding the size from PART_BYTES (recorded in the manifest, so a
#: --resume keeps the parts it started with)
ROWS_ENV = "RESNET_PART_ROWS"


@dataclass(frozen=True)
class PartPlan:
    items: int  # list items in the run
    rows: int  # list items per part (the last part may have fewer)

    @property
    def count(self) -> int:
        return -(-self.items // self.rows)

    def bounds(self, k: int) -> tuple[int, int]:
        return k * self.rows, min(self.items, (k + 1) * self.rows)


def plan(items: int, crops: int, size: int, batch_size: int) -> PartPlan:
    """Parts of about PART_BYTES of decoded float32 crops, in whole batches where that is
    possible (32 single-crop images at 224 with batches of 16: a part's last batch is never
    a short one, which the engine runs slower)."""
    rows = os.environ.get(ROWS_ENV)
    if rows is not None and not (rows.isdigit() and int(rows) > 0):
        raise ResnetError(f"{ROWS_ENV}={rows!r}: expected a whole number of list items")
    if rows:
        return PartPlan(items, int(rows))
    fit = max(1, PART_BYTES // (crops * 3 * size * size * 4))
    return PartPlan(items, fit - fit % batch_size if fit >= batch_size else fit)


class PartStore:
    """The part files and done-markers of one run in output_dir (see the module docstring)."""

    def __init__(self, output_dir: str, fmt: str, layers: dict, meta: dict, plan: PartPlan):
        self.output_dir, self.layers, self.meta, self.plan = output_dir, layers, meta, plan
        self.dtype = meta.get("dtype", "float32")
        self.stage = os.path.join(output_dir, STAGE)
        part_dir = FORMATS[fmt].part_dir
        self.data_dir = os.path.join(output_dir, part_dir) if part_dir else self.stage
        self.final = part_dir is not None
        self._markers = {}  # read once: a long run has many parts

    def part_path(self, k: int) -> str:
        return os.path.join(self.data_dir, parquet.part_name(k))

    def marker_path(self, k: int) -> str:
        return os.path.join(self.stage, f"part-{k:05d}.done")

    def prepare(self) -> None:
        """Create the folders; drop temporary files a killed worker left (never a finished
        part: one without a marker is rewritten whole when its part is redone)."""
        for folder in {self.stage, self.data_dir}:
            os.makedirs(folder, exist_ok=True)
            for name in os.listdir(folder):
                if name.startswith("."):  # a file, or an atomic_path's private folder
                    parquet.remove_entry(os.path.join(folder, name))

    def done(self) -> set[int]:
        """Parts whose marker exists."""
        if not os.path.isdir(self.stage):
            return set()
        return {int(n[5:-5]) for n in os.listdir(self.stage)
                if n.startswith("part-") and n.endswith(".done") and n[5:-5].isdigit()}

    def write(self, k: int, items, outputs: dict, failed: list) -> None:
        """Part k: `items` (its good images, in list order) with their outputs, then its
        marker recording `failed` ([list index, reason] of its bad images)."""
        if items:
            _, pq = parquet._pa()
            schema = parquet.schema(self.layers, self.meta, self.dtype)
            with atomic_path(self.part_path(k)) as tmp:
                pq.write_table(parquet.table(schema, items, outputs, self.dtype), tmp,
                               compression="zstd",
                               row_group_size=parquet.group_rows(self.layers, self.dtype))
        marker = {"rows": len(items), "failed": [[int(i), str(why)] for i, why in failed]}
        atomic_write(self.marker_path(k), json.dumps(marker).encode())

    def marker(self, k: int) -> dict:
        if k in self._markers:
            return self._markers[k]
        path = self.marker_path(k)
        try:
            with open(path, encoding="utf-8") as f:
                marker = json.load(f)
        except (OSError, ValueError) as e:
            raise ResnetError(f"{path}: unreadable part marker ({e}); pass --overwrite to "
                              "start again") from None
        if marker["rows"] and not os.path.exists(self.part_path(k)):
            raise ResnetError(f"{self.part_path(k)}: missing, though {path} records it; pass "
                              "--overwrite to start again")
        self._markers[k] = marker
        return marker

    def failures(self) -> list[tuple[int, str]]:
        """(list index, reason) of every bad image, in list order."""
        return [(i, why) for k in range(self.plan.count) for i, why in self.marker(k)["failed"]]

    def rows(self) -> int:
        return sum(self.marker(k)["rows"] for k in range(self.plan.count))

    def assemble(self, sink, items) -> None:
        """Stream the parts into `sink` in list order, one part in memory at a time."""
        if self.final:
            return
        for k in range(self.plan.count):
            marker = self.marker(k)
            if not marker["rows"]:
                continue
            bad = {i for i, _ in marker["failed"]}
            lo, hi = self.plan.bounds(k)
            good = [items[i] for i in range(lo, hi) if i not in bad]
            keys, _, outputs = parquet.read_part(self.part_path(k), self.layers, self.dtype)
            if len(keys) != len(good):
                raise ResnetError(f"{self.part_path(k)}: {len(keys)} rows, its marker says "
                                  f"{len(good)}; pass --overwrite to start again")
            sink.write(good, outputs)

    def remove_stage(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)
