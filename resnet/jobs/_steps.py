"""The steps extract and predict share: cheap checks first, then the model, then the report.

Nothing here touches an output folder; each job decides when to check and create its own.
Engines and decoders are the runner's (resnet/runners): it builds them when it starts.
Imports Paddle (through resnet.runtime): job modules import this inside `run`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from resnet.errors import ResnetError
from resnet.inputs.lists import collect
from resnet.modelio import loaded
from resnet.runtime import engine
from resnet.runtime.paddle_env import paddle

log = logging.getLogger("resnet")


@dataclass(frozen=True)
class Plan:
    """A run checked and ready to load: device, model (resolved, not read), layers, items."""

    device: str
    model: loaded.ResolvedModel
    layers: list
    items: list


def plan(config, runner, layers=None) -> Plan:
    """Device, depth and variant, layers, inputs, preprocessing: everything that can be
    refused before a model file is read or an output touched. `runner` (runners/base.py)
    says where its engines run."""
    device = runner.device()
    model = loaded.resolve(config.model_settings)  # model.json's depth, variant, recipe; flags win
    spec = model.spec
    log.info("running %s on %s (paddle %s)", spec.family.label(spec), device.upper(),
             paddle.__version__)
    settings, inputs = config.engine_settings, config.input_settings
    engine.check_options(settings.engine, device, settings.trt, settings.precision)
    if settings.calibration and settings.precision not in engine.MEASURED:
        raise ResnetError("--calibration is for --precision=int8, bf16 or auto only")
    if inputs.reduced_decode:
        log.info("--reduced_decode: large JPEGs decoded at 1/2 to 1/8 scale (faster, not "
                 "bit-exact; docs/performance.md)")
    layers = spec.check_layers(layers or config.layers_or(spec.default_features()))
    items = collect(inputs.data, inputs.labels_from_folders)
    return Plan(device, model, layers, items)


def report(what: str, done: int, failed: int, seconds: float, where: str | None,
           failed_path: str) -> None:
    log.info("%s %d images in %.1f s (%.2f img/s)%s", what, done, seconds,
             done / max(seconds, 1e-9), f", written to {where}" if where else "")
    if failed:
        log.warning("%d image(s) skipped, listed in %s", failed, failed_path)
