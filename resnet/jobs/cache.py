"""`--job=cache`: list the compiled engines on disk (model, layers, checked precisions, size,
last use) or, with --clear, remove them all (only entries the cache made: a cache folder
holding anything else is refused, see runtime/cache.py)."""
from __future__ import annotations

import datetime
import logging

from resnet.errors import ResnetError
from resnet.jobs import job

log = logging.getLogger("resnet")


def _when(stamp: float) -> str:
    return datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")


@job("cache", reads=("clear",))
def run(config) -> int:
    from resnet.runtime import cache

    where = cache.root()
    found = cache.entries(where)
    total = sum(e.size for e in found)
    cap = cache.max_bytes()
    strange = cache.foreign(where)
    if config.clear:
        if strange:  # the folder is not only the cache's: remove nothing, say what is there
            raise ResnetError(cache.refusal(where, strange[0], "--clear removes nothing"))
        for entry in found:
            cache.remove(entry)
        log.info("removed %d engine cache entr%s (%.0f MB) from %s", len(found),
                 "y" if len(found) == 1 else "ies", total / 1e6, where)
        return 0
    print(f"engine cache {where}: {len(found)} entr{'y' if len(found) == 1 else 'ies'}, "
          f"{total / 1e6:.0f} MB of " + (f"{cap / 1e9:.1f} GB" if cap else "no cap")
          + f" ({cache.MAX_ENV}); least recently used first")
    if strange:
        log.warning("%s", cache.refusal(where, strange[0], "--clear and the cap remove nothing"))
    if not found:
        return 0
    rows = [("entry", "model", "net", "layers", "checked", "MB", "last use")]
    for e in found:
        net = ((e.info["arch"] if "arch" in e.info else
                f"ResNet-{e.info['layer_num']} {e.info.get('variant', '')}")
               + (f" pool={e.info['pool']}" if e.info.get("pool", "none") != "none" else "")
               + (f" {e.info['precision']}" if "precision" in e.info else "")
               if "layer_num" in e.info else "?")
        rows.append((e.key[:12], e.model, net, ",".join(e.info.get("layers", [])) or "?",
                     ",".join(sorted(e.checked)) or "-", f"{e.size / 1e6:.0f}",
                     _when(e.last_used)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.rjust(w) if i == 5 else c.ljust(w)
                        for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return 0
