"""`python -m resnet` for the tests, started from a fork server that imported Paddle once.

A new interpreter spends most of a short run importing Paddle, OpenCV and the package, and
the suite starts a few hundred. Here multiprocessing's fork server imports them once (it runs
nothing else, so no oneDNN or OpenMP state exists yet) and forks one child per run. The child
is a real process: its own pid, file descriptors 0-2 (C-level output included), environment,
working directory, signal dispositions and exit status, so what the tests check (exit codes,
stderr lines, a SIGKILL or SIGTERM mid-run, bytes on disk) is what a user's process does.

`run` and `Popen` take subprocess's arguments. Anything but `[sys.executable, "-m", "resnet",
...]`, a run whose environment must be seen at interpreter start (FRESH_ONLY), or any run with
RESNET_TEST_FRESH=1 set goes to subprocess unchanged.
"""
from __future__ import annotations

import atexit
import io
import logging
import multiprocessing
import os
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
import weakref

#: modules a run would import anyway; a module that fails to import is skipped by the server
PRELOAD = ["numpy", "cv2", "paddle", "h5py", "pyarrow.parquet", "tqdm", "resnet.cli",
           "resnet.jobs._steps"]
#: variables read when an interpreter or a library loads, not when a job runs
FRESH_ONLY = ("PYTHON", "LD_", "OMP_", "KMP_", "MKL_", "OPENBLAS_", "FLAGS_", "GLOG_")

_context = None


def _server():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


#: the Popen arguments the forked run supports; any other goes to subprocess
SUPPORTED = {"stdin", "stdout", "stderr", "text", "env", "cwd", "input", "universal_newlines"}


def _forkable(args, kwargs) -> bool:
    env = kwargs.get("env")
    if os.environ.get("RESNET_TEST_FRESH") == "1" or set(kwargs) - SUPPORTED:
        return False
    if kwargs.get("stdin") not in (None, subprocess.DEVNULL):  # a pipe or a file: theirs
        return False
    if list(args[:3]) != [sys.executable, "-m", "resnet"]:
        return False
    changed = {k for k, v in (env or {}).items() if os.environ.get(k) != v}
    changed |= set(os.environ) - set(env or os.environ)
    if "PYTHONPATH" in changed and env and set(env.get("PYTHONPATH", "").split(os.pathsep)) <= \
            set(sys.path):
        changed.discard("PYTHONPATH")  # entries this interpreter (so the server) already has
    return not any(k.startswith(FRESH_ONLY) for k in changed)


def _child(argv, env, cwd, cpus, stdin, stdout, stderr):
    """The forked child: the standard streams and state of `python -m resnet argv`, on the
    CPUs its caller has now (a subprocess would inherit them; the server has its own)."""
    os.sched_setaffinity(0, cpus)
    for fd, path, mode in ((0, stdin, os.O_RDONLY), (1, stdout, os.O_WRONLY | os.O_APPEND),
                           (2, stderr, os.O_WRONLY | os.O_APPEND)):  # appended: files shared
        opened = os.open(path, mode)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.FileIO(1, "w", closefd=False))
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.FileIO(2, "w", closefd=False),
                                                   errors="backslashreplace", line_buffering=True)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.argv = ["-m", *argv]
    logging.root.handlers.clear()  # `import paddle` configures the root logger; a run's
    # own basicConfig comes first in a fresh interpreter, so the run's format wins there
    code = 0
    try:
        runpy.run_module("resnet", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code is None or isinstance(e.code, int):
            code = e.code or 0
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:  # as the interpreter does: die of SIGINT
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        traceback.print_exc()
        code = 1
    _finish()
    os._exit(code)


def _finish():
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


class Popen:
    """The subset of subprocess.Popen the tests use, for a run forked from the server."""

    def __init__(self, args, stdin=None, stdout=None, stderr=None, text=False, env=None,
                 cwd=None, input=None, universal_newlines=None):
        text = text or bool(universal_newlines)
        self.args = list(args)
        self._dir = tempfile.mkdtemp(prefix="resnet-run-")
        # removed by communicate(), or when this object goes (a test that only waits)
        self._remove = weakref.finalize(self, shutil.rmtree, self._dir, True)
        self._text = text
        self._files = {}
        paths = {}
        for name, spec in (("stdout", stdout), ("stderr", stderr)):
            path = os.path.join(self._dir, name)
            if spec is None:  # inherited, as subprocess would
                path = f"/proc/{os.getpid()}/fd/{1 if name == 'stdout' else 2}"
            elif spec == subprocess.STDOUT:
                path = paths["stdout"]
            elif spec == subprocess.DEVNULL:
                path = os.devnull
            elif spec != subprocess.PIPE:  # an open file
                path = f"/proc/{os.getpid()}/fd/{spec.fileno()}"
            else:
                self._files[name] = path
                open(path, "wb").close()
            paths[name] = path
        stdin_path = os.devnull
        if input is not None:
            stdin_path = os.path.join(self._dir, "stdin")
            with open(stdin_path, "wb") as f:
                f.write(input.encode() if isinstance(input, str) else input)
        elif stdin not in (None, subprocess.DEVNULL):
            raise ValueError("launch.Popen: pass stdin contents as input= (popen and run hand "
                             "other stdin to subprocess)")
        self._process = _server().Process(
            target=_child, args=(self.args[3:], dict(env if env is not None else os.environ),
                                 os.path.abspath(cwd or os.getcwd()),
                                 os.sched_getaffinity(0), stdin_path,
                                 paths["stdout"], paths["stderr"]))
        self._process.start()
        self.pid = self._process.pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            self.returncode = self._process.exitcode
        return self.returncode

    def wait(self, timeout=None):
        self._process.join(timeout)
        if self.poll() is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def communicate(self, input=None, timeout=None):
        if input is not None:
            raise ValueError("launch.Popen: pass stdin contents as Popen(input=...)")
        self.wait(timeout)
        out = []
        for name in ("stdout", "stderr"):
            path = self._files.get(name)
            data = None
            if path:
                with open(path, "rb") as f:
                    data = f.read()
                if self._text:
                    data = data.decode(errors="replace")
            out.append(data)
        self._remove()
        return tuple(out)


def popen(args, **kwargs):
    """subprocess.Popen, or the forked equivalent for a forkable `python -m resnet` run."""
    if _forkable(args, kwargs):
        return Popen(args, **kwargs)
    return subprocess.Popen(args, **kwargs)


def run(args, input=None, capture_output=False, timeout=None, check=False, **kwargs):
    """subprocess.run, forking `python -m resnet` runs from the server."""
    if not _forkable(args, kwargs):
        return subprocess.run(args, input=input, capture_output=capture_output, timeout=timeout,
                              check=check, **kwargs)
    if capture_output:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    proc = Popen(args, input=input, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    if check:
        result.check_returncode()
    return result
