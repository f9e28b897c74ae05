"""The network for fixed output layers as a static Paddle inference model (.pdmodel/.pdiparams).

Paddle 3.3's legacy (non-PIR) program runs faster under Paddle Inference than the PIR one
(docs/engine_notes.md: 52 vs 38 img/s at batch 16), and the format is chosen when Paddle
starts, so the export runs in a child process started with FLAGS_enable_pir_api=0:
`python -m resnet.runtime.static MODEL_DIR ARCH LAYERS PREFIX POOL`.
"""
from __future__ import annotations

import os
import subprocess
import sys

from resnet.errors import ResnetError


def export(model_dir: str, arch: str, layers: list[str], prefix: str,
           pool: str = "none") -> None:
    """Write PREFIX.pdmodel and PREFIX.pdiparams of architecture `arch` with the weights of
    `model_dir`, computing `layers` (in that order), each globally pooled when `pool` is avg
    or max."""
    run_legacy("resnet.runtime.static", [model_dir, arch, ",".join(layers), prefix, pool],
               prefix + ".pdmodel", "compiling the inference model")


def run_legacy(module: str, args: list[str], makes: str, what: str) -> None:
    """`python -m module args` in a child Paddle started with the legacy program format
    (FLAGS_enable_pir_api=0); a ResnetError with its last stderr line unless it made `makes`."""
    env = dict(os.environ, FLAGS_enable_pir_api="0", GLOG_minloglevel="2")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, env=env)
    if proc.returncode != 0 or not os.path.exists(makes):
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ResnetError(f"{what} failed: {tail}")


def fixed(net, layers: list[str], pool: str = "none"):
    """`net` (a Network) as a to_static Layer: input `image`, the layers as its outputs."""
    from resnet.runtime.paddle_env import paddle

    class Fixed(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, image):
            out = self.net(image, layers, pool)
            return [out[k] for k in layers]

    shape = [None, *net.spec["input"].shape]
    return paddle.jit.to_static(Fixed(), input_spec=[
        paddle.static.InputSpec(shape, "float32", "image")], full_graph=True)


def save(net, layers: list[str], prefix: str, pool: str = "none") -> None:
    """Save in the program format this process runs (legacy in export()'s child, else PIR)."""
    from resnet.runtime.paddle_env import paddle

    paddle.jit.save(fixed(net, layers, pool), prefix)


def _main(model_dir: str, arch: str, layers: str, prefix: str, pool: str = "none") -> None:
    from resnet.runtime import network

    save(network.load(model_dir, arch=arch), layers.split(","), prefix, pool)


if __name__ == "__main__":
    _main(*sys.argv[1:6])
