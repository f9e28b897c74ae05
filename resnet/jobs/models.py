"""`--job=models`: every registered architecture with its input size, parameters and default
feature layers (the names `--arch` takes), then every pretrained-weights entry (the names
`--model` takes) with its publisher, license, published accuracy and whether it is cached."""
from __future__ import annotations

from resnet.jobs import job


@job("models")
def run(config) -> int:
    from resnet.models import list_models

    rows = list_models()
    _table(("name", "input", "params", "default features", "what it is"),
           [(r["name"], f"{r['input_size']}x{r['input_size']}", f"{r['params'] / 1e6:.1f}M",
             ",".join(r["default_features"]), r["summary"]) for r in rows])
    print()
    _table(("pretrained weights (--model=NAME)", "format", "top-1/top-5", "license",
            "cached", "publisher"), _weights_rows())
    return 0


def _weights_rows() -> list[tuple]:
    from resnet.hub import WEIGHTS, install

    out = []
    for name, w in WEIGHTS.items():
        acc = "-" if w.top1 is None else f"{w.top1:.2f}/" + (
            "-" if w.top5 is None else f"{w.top5:.2f}")
        out.append((name, w.source_format, acc, w.license,
                    "yes" if install.installed(name) else "no", w.publisher))
    return out


def _table(head, rows) -> None:
    cells = [head] + rows
    widths = [max(len(c[i]) for c in cells) for i in range(len(head) - 1)]
    for c in cells:
        print("  ".join(f"{v:<{w}}" for v, w in zip(c, widths)) + "  " + c[-1])
