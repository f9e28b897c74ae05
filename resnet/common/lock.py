"""One run per folder: an exclusive `flock` on a lock file, held for the whole run.

Two runs writing the same output folder (or the same model folder) would interleave their
rows or replace each other's files, each then reporting success. So a run takes the folder's
lock before it reads or compiles anything, and a second run is refused at once, in one line
naming the holder (pid, host, start time, written as text in the lock file).

The kernel releases a flock when its holder dies, however it dies, so a lock file whose flock
can be taken is stale by definition and is simply taken over. The file is created with
O_NOFOLLOW and must be a plain file with one link, so a name someone else planted is never
written through; it is removed (while still locked) when the run ends. A run that finds the
file it locked already unlinked by an ending holder starts again with a fresh one.

Imports `resnet.common.files` and `resnet.errors`.
"""
from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import logging
import os
import socket
import stat
import time

from resnet.common.files import is_same_file
from resnet.errors import ResnetError, file_error

log = logging.getLogger("resnet")
LOCK_NAME = ".lock"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_HOLDER_BYTES = 4096  # more than any holder line; a planted huge file is never read whole
_TRIES = 20


class Busy(ResnetError):
    """The folder is locked by another live run."""


class Lock:
    """An acquired lock: `release()` removes the lock file and lets the flock go."""

    def __init__(self, path: str, fd: int):
        self.path, self.fd = path, fd

    def release(self) -> None:
        if self.fd < 0:
            return
        try:
            if is_same_file(self.path, self.fd):  # unlink while still holding it
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(self.fd)  # the flock goes with the last descriptor
            self.fd = -1


def _holder(fd: int) -> str:
    """What the holder wrote about itself ("pid 12, host h, started ..."), bounded."""
    for _ in range(10):  # the holder writes its line just after taking the lock
        try:
            text = os.pread(fd, _HOLDER_BYTES, 0).decode("utf-8", "replace")
        except OSError:
            text = ""
        fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        if fields.get("pid"):
            return (f"pid {fields['pid'][:20]} on {fields.get('host', '?')[:100]}, started "
                    f"{fields.get('started', '?')[:40]}")
        time.sleep(0.05)
    return "holder unknown"


def _open(path: str, subject: str) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise ResnetError(f"{path}: is a symbolic link, expected the lock file of "
                              f"{subject}; remove it") from None
        raise ResnetError(f"cannot lock {subject}: "
                          + file_error(path, e, expected="expected a lock file")) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise ResnetError(f"{path}: not a plain lock file (another file linked there?); "
                          "remove it")
    return fd


def acquire(path: str, subject: str, wait: bool = False) -> Lock:
    """Lock `path` (created if missing) for `subject` (the folder named in messages), or
    raise Busy naming the live holder; with `wait`, wait for the holder to end instead (it
    is alive: a dead holder's flock is already gone), saying so once."""
    told = False
    replaced = 0  # times the file was replaced under us (its holder removed it)
    while replaced < _TRIES:
        fd = _open(path, subject)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _holder(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ResnetError(f"cannot lock {subject}: {path}: {e.strerror or e}") from None
            if wait:
                if not told:
                    log.info("%s: another run has it (%s); waiting for it", subject, holder)
                    told = True
                time.sleep(0.2)
                continue
            raise Busy(f"{subject}: in use by another run ({holder}); wait for it to end or "
                       "choose another folder") from None
        if not is_same_file(path, fd):  # its holder removed it as we opened it: a fresh one
            os.close(fd)
            replaced += 1
            continue
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        text = f"pid={os.getpid()}\nhost={socket.gethostname()}\nstarted={started}\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
        return Lock(path, fd)
    raise ResnetError(f"cannot lock {subject}: {path} keeps being replaced")


def make_dirs(folder: str) -> list[str]:
    """Create `folder` and any missing parents; returns those created, deepest first."""
    created = []
    path = os.path.abspath(folder)
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        path = os.path.dirname(path)
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        created.append(path)
    return created[::-1]


def remove_empty(folders) -> None:
    """Remove these folders (deepest first) while they are empty; never anything inside."""
    for path in folders:
        try:
            os.rmdir(path)
        except OSError:
            return


@contextlib.contextmanager
def folder_lock(folder: str, name: str = LOCK_NAME, subject: str | None = None,
                create: bool = False, wait: bool = False):
    """Hold the lock file `name` in `folder` for the block. With `create`, a missing `folder`
    is made first, and removed again at the end if it is then empty (a run that left
    nothing leaves no folder either). With `wait`, a live holder is waited for."""
    created = []
    try:
        if create:
            try:
                created = make_dirs(folder)
            except OSError as e:
                raise ResnetError(f"{folder}: cannot create the folder "
                                  f"({file_error(e.filename or folder, e)})") from None
        lock = acquire(os.path.join(folder, name), subject or folder, wait)
        try:
            yield lock
        finally:
            lock.release()
    finally:
        remove_empty(created)
