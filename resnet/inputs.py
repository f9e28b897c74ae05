"""What --data names: a v1 image list, a directory of images, or one image."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .errors import ResnetError
from .imaging import is_image_name

_LABELLED = re.compile(r"^(.*\S)\s+(-?\d+)$")


@dataclass(frozen=True)
class Item:
    """One image to process: the path as the user gave it, where it is, and its label if any."""

    key: str
    path: str
    label: int | None = None


def read_list(list_path: str) -> list[Item]:
    """Items of a v1 image list: a path per line, optional integer label after whitespace.

    Blank lines and lines starting with '#' are ignored; relative paths are resolved
    against the folder holding the list, so a list works from any working directory.
    """
    base = os.path.dirname(os.path.abspath(list_path))
    items = []
    try:
        with open(list_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise ResnetError(f"{list_path}: image list is not UTF-8 text") from None
    for lineno, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        m = _LABELLED.match(text)
        path, label = (m.group(1), int(m.group(2))) if m else (text, None)
        items.append(Item(path, os.path.join(base, path), label))
    return items


def collect(data: str) -> list[Item]:
    """The items --data stands for, in order; a ResnetError if it names nothing usable."""
    if not data:
        raise ResnetError("no input given: pass --data=LIST, a directory or an image")
    if os.path.isdir(data):
        names = sorted(n for n in os.listdir(data) if is_image_name(n))
        items = [Item(os.path.join(data, n), os.path.join(data, n)) for n in names]
        if not items:
            raise ResnetError(f"{data}: directory holds no image files")
        return items
    if not os.path.exists(data):
        raise ResnetError(f"{data}: input list or image not found")
    if is_image_name(data):
        return [Item(data, data)]
    items = read_list(data)
    if not items:
        raise ResnetError(f"{data}: image list is empty")
    return items
