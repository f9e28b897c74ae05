"""What a run reports back: the CLI prints it and exits with its code, the API returns it."""
from __future__ import annotations

from dataclasses import dataclass, field

EXIT_SKIPPED = 3  # some images were skipped; everything else was written


@dataclass(frozen=True)
class Summary:
    job: str
    done: int = 0                 # images written (extract) or predicted (predict)
    failed: list = field(default_factory=list)  # (path as given, reason) of skipped images
    failed_total: int = 0         # skipped images, earlier runs of a resumed extract included
    outputs: list = field(default_factory=list)  # files written
    seconds: float = 0.0
    predictions: list | None = None  # predict from Python: (path, [(class, probability)...])

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_SKIPPED if self.failed_total else 0
