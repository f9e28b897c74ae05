"""Real extract runs for the long-run and output-format tests: a list, a command, a kill."""
import os
import shutil
import subprocess
import sys
import time

import launch
import pytest
from conftest import ROOT


def cmd(model, data, out, *extra):
    # the dygraph engine: slow enough (a few img/s) that a signal lands mid-run; the journal and
    # sinks under test are the same for every engine
    return [sys.executable, "-m", "resnet", "--job=extract", f"--model={model}", f"--data={data}",
            f"--output_dir={out}", "--output_layer=res4_1_branch2a_conv,output", "--use_gpu=0",
            "--batch_size=2", "--engine=dygraph", *extra]


def interrupt(cmd, sig, delay, tries=4):
    """Start cmd, wait until its first durable batch plus `delay` seconds, send `sig`.

    A fast machine may finish the run within `delay`; then it is run again (from scratch)
    with half the delay, so the signal always lands mid-run whatever the machine's speed.
    """
    out = cmd[6].split("=", 1)[1]
    for _ in range(tries):
        proc = launch.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=ROOT))
        deadline = time.monotonic() + 120
        while not os.path.exists(os.path.join(out, "progress.json")) and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(delay)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
        if proc.returncode not in (0, 3) or "--resume" in cmd:
            return proc.returncode, err
        for name in os.listdir(out):  # finished before the signal: start again, sooner
            path = os.path.join(out, name)
            if os.path.isdir(path) and not os.path.islink(path):  # e.g. features.parquet/
                shutil.rmtree(path)
            else:
                os.remove(path)
        delay /= 2
    pytest.fail(f"the run finished before the signal {tries} times: {err}")


