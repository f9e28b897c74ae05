"""A model directory read once per run: what it is (cheap), then its weights (loaded once).

`resolve(config)` reads model.json and the file names only: depth, variant, spec and the
preprocessing (the directory's Recipe, or v1's with its mean). `ResolvedModel.load()` then
reads and validates every parameter file and computes their sha256, once per run, so a job
and everything it calls share one LoadedModel (the files' bytes come from the page cache the
second time).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from resnet.modelio import demo, modelinfo, params as params_io

log = logging.getLogger("resnet")


@dataclass(frozen=True)
class ResolvedModel:
    directory: str | None
    spec: object
    info: modelinfo.ModelInfo | None
    preprocessing: modelinfo.Recipe  # model.json's, else v1's; --mean applied
    mean_path: str | None = None

    def load(self) -> "LoadedModel":
        values = params_io.load_model(self.directory, self.spec)
        sha256 = params_io.model_checksum(self.directory, self.spec)
        if demo.is_demo(self.directory):
            log.warning(demo.WARNING)
        return LoadedModel(self, values, sha256)


@dataclass(frozen=True)
class LoadedModel:
    resolved: ResolvedModel
    values: dict
    sha256: str

    @property
    def spec(self):
        return self.resolved.spec

    @property
    def directory(self) -> str:
        return self.resolved.directory

    @property
    def preprocessing(self):
        return self.resolved.preprocessing


def resolve(config) -> ResolvedModel:
    """The run's model as model.json, the parameter files' depth and the flags describe it."""
    spec, info = modelinfo.resolve(config)
    return ResolvedModel(config.model, spec, info,
                         modelinfo.preprocessing(info, config.mean, spec.input_size),
                         config.mean)
