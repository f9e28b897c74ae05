"""A private network namespace for tests that start servers (Ray nodes, S3): loopback only.

Ray binds to the host's routable address even when told 127.0.0.1; inside a namespace whose
only interface is loopback it has nothing else to bind to. Every process of such a test is
started in the namespace (nsenter into an anchor process that `unshare -n` made), and the
namespace knows its members: `processes()` lists them and `close()` stops them by their own
process ids, never with `ray stop` or a broad kill.
"""
import os
import signal
import subprocess
import time

import pytest


class Netns:
    def __init__(self):
        unshare = ["unshare", "-n"] if os.geteuid() == 0 else ["unshare", "-rn"]
        try:
            self.anchor = subprocess.Popen(
                unshare + ["sh", "-c", "ip link set lo up && echo ready && exec sleep 86400"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        except OSError as e:
            pytest.skip(f"cannot create a private network namespace ({e}); the Ray tests "
                        "need one so their clusters stay on loopback")
        if self.anchor.stdout.readline().strip() != "ready":
            err = self.anchor.stderr.read().strip()
            pytest.skip(f"cannot create a private network namespace ({err}); the Ray tests "
                        "need one so their clusters stay on loopback")
        self.net = os.readlink(f"/proc/{self.anchor.pid}/ns/net")
        pid = str(self.anchor.pid)
        self.prefix = (["nsenter", f"--net=/proc/{pid}/ns/net", "--"] if os.geteuid() == 0 else
                       ["nsenter", "-t", pid, "-U", "-n", "--preserve-credentials", "--"])

    def popen(self, argv, **kw):
        return subprocess.Popen(self.prefix + list(argv), **kw)

    def run(self, argv, **kw):
        return subprocess.run(self.prefix + list(argv), **kw)

    def processes(self) -> list[int]:
        """Every process in the namespace but the anchor."""
        found = []
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) != self.anchor.pid:
                try:
                    if os.readlink(f"/proc/{name}/ns/net") == self.net:
                        found.append(int(name))
                except OSError:
                    pass
        return found

    def orphans(self) -> list[int]:
        """Processes of the namespace whose parent is gone (reparented outside it): what a
        killed process left behind. Processes the test started itself are not orphans."""
        members = set(self.processes()) | {os.getpid()}
        return [p for p in self.processes() if parent(p) not in members]

    def wait_empty(self, timeout: float) -> list[int]:
        """Wait for the namespace to empty; the pids still there after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.processes()

    def kill_all(self) -> None:
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def close(self) -> None:
        self.kill_all()
        self.anchor.kill()
        self.anchor.wait()


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def children(pid: int) -> list[int]:
    """Direct children of pid."""
    return [int(n) for n in os.listdir("/proc") if n.isdigit() and parent(int(n)) == pid]


def tree(pid: int) -> list[int]:
    """pid and its descendants, parents first."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        found.append(p)
        todo += children(p)
    return found


def stop_tree(proc, timeout: float = 5) -> None:
    """Stop a started process (a `ray start --block` node) and everything under it, by pid:
    SIGTERM to the leaves first (Ray's node process alone takes ~30 s to wind down)."""
    if proc.poll() is not None:
        return
    for pid in reversed(tree(proc.pid)):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in tree(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.wait()
