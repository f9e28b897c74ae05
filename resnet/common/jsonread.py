"""JSON from files someone else wrote, parsed in bounded size and depth.

`json.loads` recurses once per nesting level, so 100k `[` in a model.json or a Keras
config.json would end in a RecursionError far from the file's name; and nothing later
walks a document deeper than a few dozen levels. `loads` refuses both in one line naming
the file, as `load` does a file larger than its caller expects.

Imports nothing of the package but `resnet.errors`.
"""
from __future__ import annotations

import json

from resnet.errors import ResnetError, file_error, first_line

#: nesting deeper than this is refused (model.json has 3 levels, a Keras config about 10)
MAX_DEPTH = 64


def loads(text, where: str, max_depth: int = MAX_DEPTH):
    """The document in `text` (str or bytes), or a ResnetError naming `where`."""
    try:
        doc = json.loads(text)
    except RecursionError:
        raise ResnetError(f"{where}: JSON nested too deep; refused") from None
    except (ValueError, TypeError) as e:  # JSONDecodeError, bad UTF-8
        raise ResnetError(f"{where}: not valid JSON ({first_line(str(e))})") from None
    if depth(doc, max_depth) > max_depth:
        raise ResnetError(f"{where}: JSON nested more than {max_depth} deep; refused")
    return doc


def load(path: str, max_bytes: int = 1 << 24, max_depth: int = MAX_DEPTH):
    """The JSON document in file `path`, read only when it is at most `max_bytes` long."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise ResnetError(file_error(path, e, "expected a JSON file")) from None
    if len(data) > max_bytes:
        raise ResnetError(f"{path}: larger than {max_bytes} bytes; not a JSON file this "
                          "program reads")
    return loads(data, path, max_depth)


def depth(doc, limit: int) -> int:
    """How deep containers nest in `doc` (iteratively; it stops counting past `limit`)."""
    deepest = 0
    stack = [(doc, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        deepest = max(deepest, level)
        if level > limit:
            return level
        stack.extend((child, level + 1) for child in node)
    return deepest
