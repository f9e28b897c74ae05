"""`--job=convert`: another system's checkpoint into a v1 model directory with model.json."""
from __future__ import annotations

import logging
import os

from resnet.errors import ResnetError
from resnet.jobs import job

log = logging.getLogger("resnet")


@job("convert", reads=("from_format", "input", "model", "arch", "layer_num", "variant",
                      "overwrite"))
def run(config) -> int:
    from resnet.common.lock import folder_lock
    from resnet.importers import IMPORTERS
    from resnet.importers.base import convert
    from resnet.modelio import modelinfo

    if not config.from_format:
        raise ResnetError(f"--job=convert needs --from: one of {', '.join(IMPORTERS.names())}")
    if not config.input:
        raise ResnetError("--job=convert needs --input=FILE (the checkpoint to convert)")
    if not config.model:
        raise ResnetError("--job=convert needs --model=OUT_DIR (the v1 directory to write)")
    out_dir = os.path.abspath(config.model)  # one run per model folder: a lock beside it
    parent, base = os.path.split(out_dir)
    with folder_lock(parent, name=f".{base}.lock", subject=config.model, create=True):
        info = convert(config.from_format, config.input, config.model, config.layer_num,
                       config.variant, config.overwrite, arch=config.arch)
    log.info("wrote %s (%s names) to %s with %s", _what(info), info.source["names"],
             config.model, modelinfo.MODEL_JSON)
    return 0


def _what(info) -> str:
    """'ResNet-50 (v1.5)' as convert has always said it, or the architecture's name."""
    if info.layer_num is not None:
        return f"ResNet-{info.layer_num} ({info.variant})"
    return info.architecture
