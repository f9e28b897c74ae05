"""ImageNet-1k class ids and names, in the index order of the v1 model zoo's `output` layer."""
from __future__ import annotations

import functools
import os

DATA_FILE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "imagenet_classes.txt")


@functools.lru_cache(maxsize=1)
def imagenet_classes() -> list[tuple[str, str]]:
    """(synset id, human-readable name) for each of the 1000 classes, index = class id."""
    with open(DATA_FILE, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t", 1) for line in f if not line.startswith("#")]
    return [(synset, names) for synset, names in rows]


def class_name(index: int) -> str:
    """The first WordNet lemma of class `index`, e.g. 282 -> 'tiger cat'."""
    return imagenet_classes()[index][1].split(",")[0]
