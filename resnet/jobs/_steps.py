"""The steps extract and predict share: cheap checks first, then the model, then the engine.

Nothing here touches an output folder; each job decides when to check and create its own.
Imports Paddle (through resnet.runtime): job modules import this inside `run`.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from resnet.common.cpu import usable_cores
from resnet.inputs.decoding import Decoders
from resnet.errors import ImageError, ResnetError
from resnet.inputs.imaging import CROPS, REDUCED_ENV, preprocess
from resnet.inputs.lists import collect
from resnet.modelio import loaded
from resnet.runners import RUNNERS
from resnet.runtime import engine
from resnet.runtime.paddle_env import paddle, select_device

log = logging.getLogger("resnet")


@dataclass(frozen=True)
class Plan:
    """A run checked and ready to load: device, model (resolved, not read), layers, items."""

    device: str
    model: loaded.ResolvedModel
    layers: list
    items: list


def plan(config, layers=None) -> Plan:
    """Device, depth and variant, layers, inputs, preprocessing: everything that can be
    refused before a model file is read or an output touched."""
    # a runner with its own workers (Ray) picks the device on each node, not here
    device = (("gpu" if config.use_gpu else "cpu") if RUNNERS[config.runner].parallel_writers
              else select_device(config.use_gpu))
    model = loaded.resolve(config)  # model.json's depth, variant, recipe; flags win
    spec = model.spec
    log.info("running ResNet-%d%s on %s (paddle %s)", spec.layer_num,
             "" if spec.variant == "v1" else f" ({spec.variant})", device.upper(),
             paddle.__version__)
    engine.check_options(config.engine, device, config.trt, config.precision)
    if config.calibration and config.precision != "int8":
        raise ResnetError("--calibration is for --precision=int8 only")
    # the decoding workers (processes, Ray tasks) read the choice from the environment
    os.environ[REDUCED_ENV] = "1" if config.reduced_decode else "0"
    if config.reduced_decode:
        log.info("--reduced_decode: large JPEGs decoded at 1/2 to 1/8 scale (faster, not "
                 "bit-exact; README: Speed)")
    layers = spec.check_layers(layers or config.layers_or(spec.default_features()))
    items = collect(config.data, config.labels_from_folders)
    return Plan(device, model, layers, items)


def runner(config, plan: Plan, model: loaded.LoadedModel, items):
    """Decoding workers started, then the engine built (compiled and checked on first use),
    handed to the configured runner."""
    decoders = Decoders(model.preprocessing, config.multi_crop, config.batch_size,
                        config.workers, len(items),
                        lockstep=decode_between_passes(plan.device, config.threads))
    try:
        net = build_engine(config, model, plan.layers, plan.device, config.threads)
        return RUNNERS[config.runner](config, net, plan.layers, decoders)
    except BaseException:
        decoders.close()
        raise


def decode_between_passes(device: str, threads: int) -> bool:
    """Whether decoding waits for the forward passes: yes where the engine has a thread on
    every core (a CPU engine with the default --threads), which leaves none for decoding."""
    return device == "cpu" and not 0 < threads < usable_cores()


def build_engine(config, model: loaded.LoadedModel, layers, device: str, threads: int):
    """The run's engine (compiled and cached, or dygraph), as every runner builds it."""
    return engine.create(config.engine, model.spec, model.values, layers, model.directory,
                         model.sha256, device, threads, config.trt, config.precision,
                         max_batch=max(config.batch_size, CROPS if config.multi_crop else 1),
                         check=config.check, pool=config.pool,
                         calibration=(calibration_images(config, model.preprocessing)
                                      if config.precision == "int8" else None))


#: --precision=int8 without --calibration: calibrated on the first images of --data
CALIBRATION_DEFAULT = 64
CALIBRATION_MAX = 512  # of a --calibration list: more adds PTQ time, not accuracy
CALIBRATION_MIN = 8


def calibration_images(config, preprocessing) -> np.ndarray:
    """The int8 calibration tensor: --calibration's images (at most CALIBRATION_MAX), else
    the first CALIBRATION_DEFAULT of --data, single-crop preprocessed as the run's; images
    that do not decode are skipped."""
    source = config.calibration or config.data
    items = collect(source)[:CALIBRATION_MAX if config.calibration else CALIBRATION_DEFAULT]
    crops = []
    for item in items:
        try:
            crops.append(preprocess(item.path, preprocessing))
        except ImageError as e:
            log.warning("calibration: skipped %s", e)
    if len(crops) < CALIBRATION_MIN:
        raise ResnetError(f"{source}: {len(crops)} usable calibration images, --precision=int8 "
                          f"needs at least {CALIBRATION_MIN}")
    log.info("int8 calibration: %d images from %s%s", len(crops),
             "--calibration " if config.calibration else "the start of --data ", source)
    return np.concatenate(crops)


def report(what: str, done: int, failed: int, seconds: float, where: str | None,
           failed_path: str) -> None:
    log.info("%s %d images in %.1f s (%.2f img/s)%s", what, done, seconds,
             done / max(seconds, 1e-9), f", written to {where}" if where else "")
    if failed:
        log.warning("%d image(s) skipped, listed in %s", failed, failed_path)
