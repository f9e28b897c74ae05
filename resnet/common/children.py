"""Worker processes (the decoding workers, engine streams): plain `python -c` children that
import their module and serve on a pipe, one mechanism for starting and stopping them.

Not multiprocessing's `spawn`: it re-runs the caller's main module in every child, so a
user's script without an `if __name__ == "__main__":` guard would start its run again there
(and a script fed on stdin cannot be re-run at all). Not fork either, once Paddle's threads
run. The child gets the parent's sys.path before it imports anything, so it runs the same
resnet whatever its working folder holds.
"""
from __future__ import annotations

import subprocess
import sys
from multiprocessing import Pipe
from multiprocessing.connection import Connection

_BOOT = ("import sys; sys.path[:] = sys.argv[4:]; import importlib; "
         "module, name = sys.argv[1].split(':'); "
         "getattr(importlib.import_module(module), name)(int(sys.argv[2]), int(sys.argv[3]))")


def start_child(target: str, shared_fd: int) -> tuple[subprocess.Popen, Connection]:
    """A child calling `target` ("module:function") with the descriptor of its end of a
    pipe and `shared_fd` (shared memory); returns the process and this end of the pipe.
    OSError if it cannot be started."""
    mine, theirs = Pipe()
    fds = (theirs.fileno(), shared_fd)
    try:
        proc = subprocess.Popen([sys.executable, "-c", _BOOT, target, *map(str, fds), *sys.path],
                                pass_fds=fds, stdin=subprocess.DEVNULL)
    except BaseException:
        mine.close()
        raise
    finally:
        theirs.close()
    return proc, mine


def stop_children(children, timeout: float) -> None:
    """Ask each (process, connection) to stop (None on its pipe), wait `timeout` s for each,
    kill what lingers, and close the connections."""
    children = list(children)
    for _, conn in children:
        try:
            conn.send(None)
        except OSError:
            pass
    for proc, conn in children:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        conn.close()
