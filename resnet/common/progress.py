"""Progress that a person can see: a tqdm bar on a terminal, plain lines in a log."""
from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("resnet")


class Progress:
    """Counts images (or bytes: unit="B"); draws a bar on a TTY, else logs a line every
    `every` seconds."""

    def __init__(self, total: int, desc: str, every: float = 30.0, stream=None, initial=0,
                 unit: str = "img"):
        self.total, self.done, self.desc, self.every = total, initial, desc, every
        self.unit = unit
        self.initial = initial
        self.start = self.last = time.monotonic()
        stream = stream or sys.stderr
        self.bar = None
        if stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total or None, desc=desc, unit=unit, file=stream,
                            dynamic_ncols=True, initial=initial, unit_scale=unit == "B")

    def update(self, n: int, failed: int | None = None) -> None:
        """n more images done; `failed`, when given, is the run's count of skipped images."""
        self.done += n
        if self.bar is not None:
            if failed:
                self.bar.set_postfix(failed=failed, refresh=False)
            self.bar.update(n)
            return
        now = time.monotonic()
        if self.unit == "B":  # a download: a line every `every` seconds
            if now - self.last >= self.every:
                self.last = now
                log.info("%s: %.1f of %s MB", self.desc, self.done / 1e6,
                         f"{self.total / 1e6:.1f}" if self.total else "?")
            return
        if now - self.last >= self.every or self.done >= self.total:
            self.last = now
            rate = (self.done - self.initial) / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            log.info("%s: %d/%d images (%.1f%%), %.1f img/s, ETA %s%s", self.desc, self.done,
                     self.total, 100.0 * self.done / max(self.total, 1), rate,
                     time.strftime("%H:%M:%S", time.gmtime(eta)),
                     f", {failed} skipped" if failed else "")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
