"""What makes a run impossible to lose: the manifest, the progress journal and failed.txt.

At batch boundaries (at most once a second, or as often as the format's `commit_every` says)
the sink is flushed, failed.txt is fsynced, and `progress.json` is replaced
atomically with the list position, row count and the byte size of every growing file. A run
killed at any moment therefore leaves a last durable state; `--resume` truncates the outputs
back to it and carries on from the next image, so each image ends up written exactly once.
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import sys

from resnet.common.files import atomic_write
from resnet.errors import ResnetError
from resnet.outputs.failures import FailureLog
from resnet.outputs.parts import STAGE

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


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as e:
        raise ResnetError(f"{path}: unreadable ({e}); pass --overwrite to start again") from None


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
    changed = [k for k in SAME_RUN if old.get(k, ABSENT.get(k)) != manifest.get(k, ABSENT.get(k))]
    if changed:
        raise ResnetError(f"{output_dir}: cannot resume: the earlier run used different "
                          f"{', '.join(changed)}; pass --overwrite to start again")
    return old


def progress(output_dir: str) -> dict:
    """The last durable point of the run in output_dir (zeros when it has none)."""
    return _read_json(os.path.join(output_dir, PROGRESS)) or {"position": 0, "rows": 0}


class Journal:
    """The bookkeeping of one output directory for one run (or its resumption)."""

    def __init__(self, output_dir: str, manifest: dict, outputs, resume: bool, overwrite: bool):
        self.dir = output_dir
        self.manifest = dict(manifest, command=sys.argv[:], status="running")
        self.state = {"position": 0, "rows": 0, "failed": 0, "failed_bytes": 0, "sink": {}}
        existing = check_free(output_dir, outputs, resume, overwrite)
        os.makedirs(output_dir, exist_ok=True)
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
        self.state = _read_json(self.path(PROGRESS)) or self.state
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
        self.state.update(position=position, rows=rows, sink=sink_state,
                          failed_bytes=self.failures.sync())
        atomic_write(self.path(PROGRESS), json.dumps(self.state).encode())

    def finish(self, complete: bool) -> None:
        self.failures.close()
        self.manifest.update(status="complete" if complete else "interrupted",
                             rows=self.state["rows"], failed=self.state["failed"],
                             position=self.state["position"], finished=_now())
        self._write_manifest()

    def _write_manifest(self):
        atomic_write(self.path(MANIFEST), json.dumps(self.manifest, indent=1).encode())
