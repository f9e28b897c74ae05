"""Importing Paddle quietly and choosing the device it runs on."""
from __future__ import annotations

import os
import warnings

from resnet.errors import ResnetError

#: What to install when Paddle is missing: Paddle is an extra so GPU users can pick their build.
INSTALL_HELP = ('pip install -e ".[cpu]" (or pip install paddlepaddle) for the CPU, or '
                "pip install paddlepaddle-gpu for NVIDIA GPUs")

os.environ.setdefault("GLOG_minloglevel", "2")  # Paddle's C++ start-up chatter

#: The CPU type Intel's MKL is told to take on AMD CPUs (5: its AVX2 kernels).
MKL_AMD_TYPE = "5"


def mkl_cpu_type(vendor: str | None, flags) -> str | None:
    """MKL_DEBUG_CPU_TYPE for this CPU, or None to leave MKL alone. The MKL build in Paddle's
    CPU wheel (behind the dygraph network's convolutions and matmuls: --engine=dygraph, and
    the fp32 reference every check and int8/bf16 measurement compares with) runs a generic
    SSE path on any CPU not made by Intel, whatever it supports; this setting, read when MKL
    first runs, makes it take the AVX2 kernels there. Only for AMD CPUs that have AVX2 and
    FMA: told a type the CPU lacks, MKL would run instructions it cannot execute."""
    if vendor == "AuthenticAMD" and {"avx2", "fma"} <= set(flags or ()):
        return MKL_AMD_TYPE
    return None


def _mkl_on_amd() -> None:
    from resnet.common import cpu

    wanted = mkl_cpu_type(cpu.cpu_vendor(), cpu.cpu_flags())
    if wanted:
        os.environ.setdefault("MKL_DEBUG_CPU_TYPE", wanted)  # a user's own setting wins


_mkl_on_amd()  # before Paddle's first MKL call (MKL reads it then, not at import)
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
