"""failed.txt: the images a run skipped, one `path<TAB>reason` line each, kept durable.

The one writer of failure lists: extract's journal (failed.txt, resumable: cut back to the
byte size recorded at the last durable point) and predict (predict_failed.txt). A run that
skips nothing leaves no file (and removes the list of an earlier run it replaces).

A path or reason holding a backslash, newline, carriage return or tab is written with
backslash escapes (`\\\\`, `\\n`, `\\r`, `\\t`; outputs/growing.py), so every record is one
line whatever the file names; `read_failures` gives the records back unescaped.
"""
from __future__ import annotations

import os

from resnet.outputs import growing


class FailureLog:
    """Appends failures to `path`, keeping `keep` bytes of an earlier run's list."""

    def __init__(self, path: str, keep: int = 0):
        self.path, self.file = path, None
        if keep:  # --resume: the journal checked the file against its record already
            self.file = growing.reopen(path, keep)
        elif os.path.lexists(path) and not os.path.isdir(path):
            os.remove(path)

    def _open(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self.file = growing.create(self.path)

    def add(self, key: str, reason: str) -> None:
        if self.file is None:
            self._open()
        line = f"{growing.escape(key)}\t{growing.escape(reason)}\n"
        self.file.write(line.encode("utf-8", "surrogateescape"))
        self.file.flush()

    def sync(self) -> int:
        """Make what was added durable; returns the byte size to resume from."""
        if self.file is None:
            return 0
        os.fsync(self.file.fileno())
        return self.file.tell()

    def tail(self) -> str | None:
        """The checksum of the last committed block (growing.tail_digest), after `sync`."""
        if self.file is None:
            return None
        return growing.tail_digest(self.file.fileno(), self.file.tell())

    def close(self) -> None:
        if self.file is None or self.file.closed:
            return
        empty = self.sync() == 0
        self.file.close()
        if empty:
            os.remove(self.path)


def read_failures(path: str) -> list[tuple[str, str]]:
    """The (path, reason) records of a failure list, unescaped, in the order written."""
    with open(path, "rb") as f:
        lines = f.read().decode("utf-8", "surrogateescape").split("\n")
    records = []
    for line in lines:
        if line:
            key, _, reason = line.partition("\t")
            records.append((growing.unescape(key), growing.unescape(reason)))
    return records
