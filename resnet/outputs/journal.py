"""What makes a run impossible to lose: the manifest, the progress journal and failed.txt.

At batch boundaries (at most once a second, or as often as the format's `commit_every` says)
the sink is flushed, failed.txt is fsynced, and `progress.json` is replaced
atomically with the list position, row count and the byte size of every growing file. A run
killed at any moment therefore leaves a last durable state; `--resume` truncates the outputs
back to it and carries on from the next image, so each image ends up written exactly once.

--resume first checks that state against the files, before it changes anything
(`check_files`): the numbers whole, in range and adding up (rows + failed = position),
failed.txt and the format's files at least as long as recorded with the sha256 of their last
committed block unchanged (outputs/growing.py), the rows they hold as recorded
(Sink.check_saved). A mismatch is refused in one line naming the file; no file is extended.
"""
from __future__ import annotations

import datetime
import errno
import json
import logging
import os
import shutil
import sys

from resnet.common.files import atomic_write
from resnet.errors import ResnetError, file_error
from resnet.outputs import FORMATS, growing
from resnet.outputs.failures import FailureLog
from resnet.outputs.parts import STAGE

log = logging.getLogger("resnet")
MANIFEST = "manifest.json"
PROGRESS = "progress.json"
FAILED = "failed.txt"
#: Manifest fields that must match for --resume to continue an earlier run.
SAME_RUN = ("model_sha256", "layer_num", "variant", "layers", "format", "multi_crop", "mean",
            "preprocessing", "items", "list_sha256", "shard", "pool", "dtype", "compression",
            "runner", "part_rows", "decode", "precision")
#: What a manifest written before a field existed (or by a format without it) meant by its absence.
ABSENT = {"pool": "none", "dtype": "float32", "compression": "none", "runner": "local",
          "decode": "full", "precision": "fp32"}
#: manifest.json and progress.json are a few KB (a manifest's class list at most ~100 KB)
MAX_JOURNAL_BYTES = 1 << 24


def _read_json(path: str):
    """A journal file's document (None where there is none), read in bounded size and depth:
    these files are small, and one that is not is not ours."""
    from resnet.common.jsonread import loads

    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JOURNAL_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ResnetError(f"{file_error(path, e)}; pass --overwrite to start again") from None
    if len(data) > MAX_JOURNAL_BYTES:
        raise ResnetError(f"{path}: larger than {MAX_JOURNAL_BYTES} bytes, not a journal file "
                          "of this program; pass --overwrite to start again")
    try:
        return loads(data, path)
    except ResnetError as e:
        raise ResnetError(f"{e}; pass --overwrite to start again") from None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def remove(path: str) -> None:
    """Remove an earlier run's output, a file or a folder of part files (--overwrite)."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


def check_free(output_dir: str, outputs, resume: bool, overwrite: bool) -> list[str]:
    """The run's files already in output_dir; an error if neither --resume nor --overwrite."""
    existing = [n for n in (*outputs, MANIFEST, PROGRESS, FAILED, STAGE)
                if os.path.exists(os.path.join(output_dir, n))]
    if existing and not (resume or overwrite):
        raise ResnetError(f"{output_dir}: already holds output ({', '.join(sorted(existing))}); "
                          "pass --resume to continue that run or --overwrite to replace it")
    return existing


def check_resumable(output_dir: str, manifest: dict, outputs=()) -> dict:
    """The earlier run's manifest, if this run (described by `manifest`) may continue it.

    Cheap (reads one JSON file), so it runs before the model is compiled. A folder with no
    output yet is trivially resumable (an empty dict comes back).
    """
    old = _read_json(os.path.join(output_dir, MANIFEST))
    if old is None:
        if any(os.path.exists(os.path.join(output_dir, n)) for n in (*outputs, PROGRESS)):
            raise ResnetError(f"{output_dir}: has output but no {MANIFEST}, so it cannot be "
                              "resumed safely; pass --overwrite to start again")
        return {}
    if not isinstance(old, dict):
        raise ResnetError(f"{os.path.join(output_dir, MANIFEST)}: not a run manifest; pass "
                          "--overwrite to start again")
    changed = [k for k in SAME_RUN if old.get(k, ABSENT.get(k)) != manifest.get(k, ABSENT.get(k))]
    if changed:
        raise ResnetError(f"{output_dir}: cannot resume: the earlier run used different "
                          f"{', '.join(changed)}; pass --overwrite to start again")
    check_files(output_dir, manifest)
    return old


def check_files(output_dir: str, manifest: dict) -> dict:
    """The recorded durable point, after checking it against the files (before anything is
    modified): numbers in range and adding up, failed.txt and the format's files at least
    as long as recorded with the same last committed block (growing.py), row counts. Any
    mismatch is refused in one line naming the file."""
    state = progress(output_dir, manifest.get("items"))
    failed = os.path.join(output_dir, FAILED)
    if state["failed_bytes"]:
        growing.check(failed, state["failed_bytes"], state.get("failed_tail"))
        lines = growing.count_lines(failed, state["failed_bytes"])
        if lines != state["failed"]:
            raise ResnetError(f"{failed}: {lines} records where {state['failed']} were "
                              f"recorded; {growing.AGAIN}")
    elif state["failed"]:
        raise ResnetError(f"{os.path.join(output_dir, PROGRESS)}: {state['failed']} failed "
                          f"images recorded but no bytes of {FAILED}; {growing.AGAIN}")
    fmt = manifest.get("format")
    parallel = "part_rows" in manifest  # parts (parts.py) carry their own record
    if fmt in FORMATS and not parallel and (state["position"] or state["rows"]):
        FORMATS[fmt].check_saved(output_dir, {k: tuple(v) for k, v in
                                              manifest.get("layers", {}).items()},
                                 state["rows"], state["sink"])
    return state


def progress(output_dir: str, items: int | None = None) -> dict:
    """The last durable point of the run in output_dir (zeros when it has none), its numbers
    checked: whole, not negative, at most `items` list items, and rows + failed images
    equal to the list position (each item taken is either written or failed)."""
    path = os.path.join(output_dir, PROGRESS)
    state = _read_json(path)
    if state is None:
        return {"position": 0, "rows": 0, "failed": 0, "failed_bytes": 0, "sink": {}}
    if not isinstance(state, dict):
        raise ResnetError(f"{path}: not a progress record; {growing.AGAIN}")
    position = growing.number(state.get("position"), path, "position", items)
    rows = growing.number(state.get("rows"), path, "rows", position)
    failed = growing.number(state.get("failed"), path, "failed", position)
    failed_bytes = growing.number(state.get("failed_bytes"), path, "failed_bytes")
    if rows + failed != position:
        raise ResnetError(f"{path}: {rows} rows and {failed} failed images do not make the "
                          f"recorded list position {position}; {growing.AGAIN}")
    sink = state.get("sink", {})
    if not isinstance(sink, dict):
        raise ResnetError(f"{path}: 'sink' is not a record of the output files; "
                          f"{growing.AGAIN}")
    checked = dict(state, position=position, rows=rows, failed=failed,
                   failed_bytes=failed_bytes, sink=sink)
    checked["failed_tail"] = growing.digest_field(state.get("failed_tail"), path, "failed_tail")
    return checked


class Journal:
    """The bookkeeping of one output directory for one run (or its resumption)."""

    def __init__(self, output_dir: str, manifest: dict, outputs, resume: bool, overwrite: bool):
        self.dir = output_dir
        self.manifest = dict(manifest, command=sys.argv[:], status="running")
        self.state = {"position": 0, "rows": 0, "failed": 0, "failed_bytes": 0, "sink": {}}
        existing = check_free(output_dir, outputs, resume, overwrite)
        os.makedirs(output_dir, exist_ok=True)
        #: whether every run file in the folder is this run's (none kept from an earlier one)
        self.fresh = not (existing and resume)
        if existing and resume:
            self._take_over()
        else:
            for name in existing:
                remove(os.path.join(output_dir, name))
        self.manifest.setdefault("started", _now())
        self._write_manifest()
        self.failures = FailureLog(self.path(FAILED), self.state["failed_bytes"])

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def _take_over(self):
        old = check_resumable(self.dir, self.manifest)
        if not old:  # something is there (check_free said so) but no manifest
            raise ResnetError(f"{self.dir}: has output but no {MANIFEST}, so it cannot be "
                              "resumed safely; pass --overwrite to start again")
        # check_resumable checked the recorded state against the files before anything changed
        self.state = progress(self.dir, self.manifest.get("items"))
        self.manifest["started"] = old.get("started")
        self.manifest["resumed"] = old.get("resumed", 0) + 1

    @property
    def resuming(self) -> bool:
        return self.state["position"] > 0 or self.state["rows"] > 0

    def fail(self, key: str, reason: str) -> None:
        self.failures.add(key, reason)
        self.state["failed"] += 1

    def commit(self, position: int, rows: int, sink_state: dict) -> None:
        """Record a durable point: everything before `position` is written (call after flush)."""
        failed_bytes = self.failures.sync()
        self.state.update(position=position, rows=rows, sink=sink_state,
                          failed_bytes=failed_bytes, failed_tail=self.failures.tail())
        try:
            atomic_write(self.path(PROGRESS), json.dumps(self.state).encode())
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise ResnetError(f"{self.dir}: no space left on the device to record progress. "
                              "What was committed before is kept: free space and rerun with "
                              "--resume") from None

    def finish(self, complete: bool, discard_empty: bool = True) -> None:
        """Record how the run ended. A fresh run that ends before its first commit removes
        what it wrote (`discard_empty`): --resume would start it from nothing anyway, and
        its files would only make the same command be refused as "already holds output"."""
        self.failures.close()
        if (not complete and discard_empty and self.fresh
                and not os.path.exists(self.path(PROGRESS))):
            self._discard()
            return
        self.manifest.update(status="complete" if complete else "interrupted",
                             rows=self.state["rows"], failed=self.state["failed"],
                             position=self.state["position"], finished=_now())
        self._write_manifest()

    def _discard(self) -> None:
        """Remove the run files of this fresh run (no earlier run's are left in the folder)."""
        from resnet.outputs.base import existing_outputs

        names = [*existing_outputs(self.manifest["format"], self.dir), MANIFEST, PROGRESS,
                 FAILED, STAGE]
        for name in dict.fromkeys(names):
            path = self.path(name)
            if os.path.lexists(path):
                remove(path)
        log.info("%s: nothing was committed, so the files this run created were removed",
                 self.dir)

    def _write_manifest(self):
        atomic_write(self.path(MANIFEST), json.dumps(self.manifest, indent=1).encode())
