"""The Runner protocol every runner keeps, and what an extract hands a runner.

A job picks a runner by name (RUNNERS[config.runner](config)) and never asks which one it
got: the runner decides where the engines run, how images reach them and how the features
are written (the local runner hands batches back in list order to one sink; Ray's actors
write part files that are joined afterwards). The job keeps what every run shares: the
checks, the manifest, the folder lock and the summary. A runner is built from the RunConfig
and keeps only the settings of its concerns (config.py: InputSettings, EngineSettings, ...);
what it hands on (decoders, engine builder, sinks, journal) gets one settings object each.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol


@dataclass
class Outcome:
    """What a stream of images came to: images computed, and (item, reason) of those skipped."""

    done: int = 0
    failed: list = field(default_factory=list)


@dataclass(frozen=True)
class Extracted:
    """What an extract wrote: rows (images) this run, (key, reason) of the images skipped
    this run, the folder's totals, and the seconds it took."""

    written: int
    failed: list
    failed_total: int
    rows: int
    seconds: float


@dataclass(frozen=True)
class Extraction:
    """One extract, checked and ready to write: everything a runner's `extract` needs."""

    output: object  # config.OutputSettings: format, dtype, resume, overwrite
    model: object  # modelio.loaded.LoadedModel
    layers: list
    device: str
    items: list  # this run's items (its shard of the list)
    out_dir: str
    manifest: dict
    shapes: dict  # layer -> stored shape
    meta: dict  # what the sink files record
    outputs: Callable[[], list]  # every format's files now in out_dir

    def journal(self, **entries):
        """The folder's Journal, opened now (an --overwrite clears the old output here), with
        the runner's own manifest `entries` added."""
        from resnet.outputs import journal

        return journal.Journal(self.out_dir, dict(self.manifest, **entries), self.outputs(),
                               self.output.resume, self.output.overwrite)


class Runner(Protocol):
    """Registered in RUNNERS; `Runner(config)` (a RunConfig, of which it keeps the settings
    objects it uses) starts nothing (cheap)."""

    def device(self) -> str:
        """Where the engines run ("cpu" / "gpu"), chosen before the model is read."""

    def manifest(self, items: list, preprocessing, out_dir: str) -> dict:
        """The runner's own manifest entries, which --resume must find unchanged."""

    def extract(self, run: Extraction) -> Extracted:
        """Compute and write every item's features, the journal kept, resumable."""

    def streaming(self, model, layers: list, device: str, items_count: int):
        """A context manager (--job=predict): decoders and engine started, yields a runner
        whose `run(items, on_batch, on_fail, desc, skip=0) -> Outcome` feeds the items through
        the engine, calling on_batch(items, outputs, consumed) and on_fail(item, reason) in
        list order; a runner that streams nothing refuses in one line."""
