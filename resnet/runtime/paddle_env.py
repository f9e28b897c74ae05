"""Importing Paddle quietly and choosing the device it runs on."""
from __future__ import annotations

import os
import warnings

from resnet.errors import ResnetError

#: What to install when Paddle is missing: Paddle is an extra so GPU users can pick their build.
INSTALL_HELP = ('pip install -e ".[cpu]" (or pip install paddlepaddle) for the CPU, or '
                "pip install paddlepaddle-gpu for NVIDIA GPUs")

os.environ.setdefault("GLOG_minloglevel", "2")  # Paddle's C++ start-up chatter
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "No ccache found", irrelevant to users
        import paddle
except ImportError as e:
    if isinstance(e, ModuleNotFoundError) and (e.name or "").split(".")[0] == "paddle":
        raise ResnetError(f"PaddlePaddle is not installed; this job runs the network and needs "
                          f"it: {INSTALL_HELP}") from None
    raise ResnetError(f"PaddlePaddle is installed but failed to import ({e}); reinstall it: "
                      f"{INSTALL_HELP}") from None


def restore_python_sigterm() -> None:
    """Give SIGTERM back to Python: Paddle's import installs a C++ handler that prints a
    "FatalError" and kills the process, bypassing the CLI's (which stops a run like Ctrl-C:
    manifest interrupted, exit 143). Re-setting Python's own handler re-installs it."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        handler = signal.getsignal(signal.SIGTERM)
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)


restore_python_sigterm()

GPU_HELP = ("install the CUDA build of Paddle: pip uninstall paddlepaddle && "
            "pip install paddlepaddle-gpu (see https://www.paddlepaddle.org.cn/install)")


def gpu_available() -> bool:
    try:
        return paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    except Exception:  # a CUDA build without a driver raises here
        return False


def select_device(use_gpu: bool | None) -> str:
    """'gpu' or 'cpu', set as Paddle's device; use_gpu=None means GPU when there is one.

    Asking for the GPU where there is none is an error, never a silent fallback to CPU.
    """
    if use_gpu is None:
        use_gpu = gpu_available()
    elif use_gpu and not paddle.device.is_compiled_with_cuda():
        raise ResnetError(f"--use_gpu=1 but this Paddle ({paddle.__version__}) has no CUDA "
                          f"support; {GPU_HELP}, or pass --use_gpu=0")
    elif use_gpu and not gpu_available():
        raise ResnetError("--use_gpu=1 but no CUDA device is visible (check the driver and "
                          "CUDA_VISIBLE_DEVICES), or pass --use_gpu=0")
    device = "gpu" if use_gpu else "cpu"
    paddle.set_device(device)
    return device
