"""A seeded demo model in the real v1 format, so a fresh checkout runs end to end offline.

Its weights are random: the pipeline, file formats and loader are real, the features are not.
"""
from __future__ import annotations

import os

from resnet.common.files import atomic_write
from resnet.modelio import params as params_io
from resnet.models import build, build_arch

MARKER = "DEMO_WEIGHTS.txt"
WARNING = ("DEMO WEIGHTS: this model has seeded random weights, so its features and labels are "
           "MEANINGLESS. Get the real v1 models with: (cd model && ./get_model.sh)")


def is_demo(model_dir: str) -> bool:
    return os.path.exists(os.path.join(model_dir, MARKER))


def write_demo_model(model_dir: str, layer_num: int = 50, seed: int = 0,
                     arch: str | None = None) -> str:
    """Write (once) a seeded random network in v1 format to `model_dir`, marked as demo: the
    v1 zoo's ResNet at `layer_num`, or architecture `arch` (then with a model.json naming it,
    v1's preprocessing)."""
    from resnet.modelio import modelinfo

    spec = build_arch(arch) if arch else build(layer_num)
    if is_demo(model_dir):
        return model_dir
    params_io.save_model(model_dir, spec, params_io.random_params(spec, seed))
    if arch:
        modelinfo.write(model_dir, modelinfo.ModelInfo(None, None, arch=arch))
    atomic_write(os.path.join(model_dir, MARKER),  # never written through a planted link
                 f"{spec.family.short(spec)} with seeded random weights (seed {seed}).\n"
                 f"{WARNING}\n".encode())
    return model_dir
