"""`--job=models`: every registered architecture with its input size, parameters and default
feature layers (the names `--arch` takes)."""
from __future__ import annotations

from resnet.jobs import job


@job("models")
def run(config) -> int:
    from resnet.models import list_models

    rows = list_models()
    head = ("name", "input", "params", "default features", "what it is")
    cells = [head] + [(r["name"], f"{r['input_size']}x{r['input_size']}",
                       f"{r['params'] / 1e6:.1f}M", ",".join(r["default_features"]),
                       r["summary"]) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head) - 1)]
    for c in cells:
        print("  ".join(f"{v:<{w}}" for v, w in zip(c, widths)) + "  " + c[-1])
    return 0
