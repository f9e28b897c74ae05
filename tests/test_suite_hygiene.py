"""The test suite cleans up after itself (issue 21, item 19): a passing run leaves none of its
temporary folders (models, compiled engines, outputs: GBs at peak), a failing run keeps its
own for inspection. Checked by running pytest with this project's configuration on two tiny
test files, in a temporary root of their own (PYTEST_DEBUG_TEMPROOT), so this session's
folders are never touched."""
import os
import subprocess
import sys

from conftest import ROOT

TEST = """
def test_writes(tmp_path):
    (tmp_path / "big.bin").write_bytes(b"x" * (1 << 20))
    assert {ok}
"""


def _session(tmp_path, ok: bool):
    tests = tmp_path / "case"
    tests.mkdir(exist_ok=True)
    (tests / "test_case.py").write_text(TEST.format(ok=ok))
    root = tmp_path / "temproot"
    root.mkdir(exist_ok=True)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "-c", os.path.join(ROOT, "pyproject.toml"), "--rootdir", str(tests),
                        str(tests / "test_case.py")],
                       env=dict(os.environ, PYTEST_DEBUG_TEMPROOT=str(root),
                                PYTEST_ADDOPTS="", PYTEST_XDIST_WORKER=""),
                       capture_output=True, text=True, timeout=120, cwd=str(tests))
    kept = [os.path.join(base, name) for base, _, names in os.walk(root) for name in names
            if name == "big.bin"]
    return r, kept


def test_a_passing_run_leaves_no_temporary_files_and_a_failing_one_keeps_them(tmp_path):
    r, kept = _session(tmp_path, ok=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert kept == []
    r, kept = _session(tmp_path, ok=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert len(kept) == 1 and os.path.getsize(kept[0]) == 1 << 20


def test_a_forked_run_is_what_a_fresh_interpreter_does(tmp_path):
    """tests/launch.py forks `python -m resnet` runs from a server that imported Paddle once:
    the exit status, stdout and stderr must be a fresh interpreter's, for a job's error, a flag
    error (argparse's exit) and a job that logs; variables read at interpreter start are left
    to a fresh one."""
    import launch

    env = dict(os.environ, PYTHONPATH=ROOT)
    for args in (["--job=layers", "--arch=vgg61"], ["--job=layers", "--batch_size=0"],
                 ["--job=demo_model", f"--model={tmp_path / 'demo'}", "--layer_num=18"]):
        argv = [sys.executable, "-m", "resnet", *args]
        assert launch._forkable(argv, {"env": env})
        forked = launch.run(argv, env=env, capture_output=True, text=True, timeout=120)
        if args[0] == "--job=demo_model":
            (tmp_path / "forked").mkdir()
            os.rename(tmp_path / "demo", tmp_path / "forked" / "demo")
        fresh = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        assert (forked.returncode, forked.stdout, forked.stderr) == \
            (fresh.returncode, fresh.stdout, fresh.stderr), args
    made = {name: (tmp_path / "demo" / name).read_bytes()
            for name in os.listdir(tmp_path / "demo")}
    assert made and made == {name: (tmp_path / "forked" / "demo" / name).read_bytes()
                             for name in os.listdir(tmp_path / "forked" / "demo")}
    argv = [sys.executable, "-m", "resnet", "--job=models"]
    assert not launch._forkable(argv, {"env": dict(env, FLAGS_use_mkldnn="1")})
    assert not launch._forkable(argv, {"env": dict(env, PYTHONPATH="/elsewhere")})
    assert not launch._forkable(argv, {"env": env, "preexec_fn": print})
    assert not launch._forkable(argv, {"env": env, "stdin": subprocess.PIPE})
    assert not launch._forkable([sys.executable, "-c", "pass"], {"env": env})
