"""The images --precision=int8 is calibrated on, and int8, bf16 and auto are measured on
against fp32, preprocessed as the run's own."""
from __future__ import annotations

import logging

import numpy as np

from resnet.errors import ImageError, ResnetError

log = logging.getLogger("resnet")

#: without --calibration: calibrated and measured on the first images of --data
CALIBRATION_DEFAULT = 64
CALIBRATION_MAX = 512  # of a --calibration list: more adds PTQ time, not accuracy
CALIBRATION_MIN = 8


def calibration_images(calibration: str | None, inputs, preprocessing,
                       precision: str = "int8") -> np.ndarray:
    """The calibration tensor of a --precision=`precision` run: `calibration`'s images (at
    most CALIBRATION_MAX), else the first CALIBRATION_DEFAULT of the run's --data,
    single-crop preprocessed as the run's (`inputs`: its config.InputSettings, for --data and
    --reduced_decode); images that do not decode are skipped."""
    from resnet.inputs.imaging import preprocess
    from resnet.inputs.lists import collect

    source, reduced = calibration or inputs.data, inputs.reduced_decode
    items = collect(source)[:CALIBRATION_MAX if calibration else CALIBRATION_DEFAULT]
    crops = []
    for item in items:
        try:
            crops.append(preprocess(item.path, preprocessing, reduced=reduced))
        except ImageError as e:
            log.warning("calibration: skipped %s", e)
    if len(crops) < CALIBRATION_MIN:
        raise ResnetError(f"{source}: {len(crops)} usable calibration images, "
                          f"--precision={precision} needs at least {CALIBRATION_MIN}")
    log.info("%s calibration: %d images from %s%s", precision, len(crops),
             "--calibration " if calibration else "the start of --data ", source)
    return np.concatenate(crops)
