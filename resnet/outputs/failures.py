"""failed.txt: the images a run skipped, one `path<TAB>reason` line each, kept durable.

The one writer of failure lists: extract's journal (failed.txt, resumable: cut back to the
byte size recorded at the last durable point) and predict (predict_failed.txt). A run that
skips nothing leaves no file (and removes the list of an earlier run it replaces).
"""
from __future__ import annotations

import os


class FailureLog:
    """Appends failures to `path`, keeping `keep` bytes of an earlier run's list."""

    def __init__(self, path: str, keep: int = 0):
        self.path, self.file = path, None
        if keep and os.path.exists(path):
            self._open("r+b")
            self.file.truncate(keep)
            self.file.seek(0, os.SEEK_END)
        elif os.path.exists(path):
            os.remove(path)

    def _open(self, mode: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self.file = open(self.path, mode)

    def add(self, key: str, reason: str) -> None:
        if self.file is None:
            self._open("wb")
        self.file.write(f"{key}\t{reason}\n".encode("utf-8", "surrogateescape"))
        self.file.flush()

    def sync(self) -> int:
        """Make what was added durable; returns the byte size to resume from."""
        if self.file is None:
            return 0
        os.fsync(self.file.fileno())
        return self.file.tell()

    def close(self) -> None:
        if self.file is None or self.file.closed:
            return
        empty = self.sync() == 0
        self.file.close()
        if empty:
            os.remove(self.path)
