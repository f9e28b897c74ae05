"""What --data names: a v1 image list, a directory tree of images, or one image, on disk or
behind a URI (s3://bucket/prefix/, s3://bucket/list.txt; see resnet.inputs.remote)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from resnet.errors import ImageError, ResnetError
from resnet.inputs import remote
from resnet.inputs.facts import is_image_name

_LABELLED = re.compile(r"^(.*\S)\s+(-?\d+)$")
#: labels are stored as 64-bit integers (HDF5 i8, Parquet int64)
LABEL_RANGE = (-2**63, 2**63 - 1)
_TWO_COLUMNS = re.compile(r"^(.*\S)\s+(\S+)$")


@dataclass(frozen=True)
class Item:
    """One image to process: the path as the user gave it, where it is, and its label if any."""

    key: str
    path: str
    label: int | None = None


def read_list(list_path: str) -> list[Item]:
    """Items of a v1 image list: a path per line, optional integer label after whitespace.

    Blank lines and lines starting with '#' are ignored; relative paths are resolved
    against the folder holding the list, so a list works from any working directory; a line
    that is a URI (s3://...) is kept as it is. A second column that is not an integer is
    refused with its line number, rather than silently becoming part of the path.
    """
    base = os.path.dirname(os.path.abspath(list_path))
    try:
        with open(list_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError:
        raise ResnetError(f"{list_path}: image list is not UTF-8 text") from None
    return _parse(list_path, lines, lambda p: p if remote.is_uri(p) else os.path.join(base, p),
                  lambda p: not remote.is_uri(p) and os.path.exists(os.path.join(base, p)))


def read_remote_list(uri: str) -> list[Item]:
    """read_list for a list behind a URI: relative lines resolved against the list's "folder"."""
    try:
        raw = remote.read_bytes(uri)
    except ImageError as e:  # the list, not an image: stops the run
        raise ResnetError(str(e)) from None
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ResnetError(f"{uri}: image list is not UTF-8 text") from None
    return _parse(uri, lines, lambda p: remote.join(uri, p), lambda p: False)


def _parse(list_path: str, lines: list[str], resolve, exists) -> list[Item]:
    items = []
    for lineno, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        m = _LABELLED.match(text)
        path, label = (m.group(1), _label(list_path, lineno, m.group(2))) if m else (text, None)
        if label is None:
            _refuse_bad_label(list_path, lineno, text, exists)
        items.append(Item(path, resolve(path), label))
    return items


def _label(list_path: str, lineno: int, digits: str) -> int:
    """A list line's label, refused with its line when a 64-bit integer cannot hold it (the
    outputs store int64), before any work is done."""
    value = int(digits) if len(digits) <= 20 else None  # int() of 5,000 digits is an error
    if value is None or not LABEL_RANGE[0] <= value <= LABEL_RANGE[1]:
        shown = digits if len(digits) <= 30 else digits[:27] + "..."
        raise ResnetError(f"{list_path}:{lineno}: label {shown} is out of range (a label is a "
                          "64-bit integer)")
    return value


def _refuse_bad_label(list_path: str, lineno: int, text: str, exists) -> None:
    """'img.jpg notalabel' is a bad label; 'my photo.jpg' is a path with a space."""
    m = _TWO_COLUMNS.match(text)
    if m is None or exists(text):
        return
    head, last = m.groups()
    if is_image_name(head) and not is_image_name(last):
        raise ResnetError(f"{list_path}:{lineno}: label {last!r} after {head!r} is not an "
                          "integer (a line is: path [integer label])")


def _walk(root: str) -> list[str]:
    """Image files under root, recursively, in sorted order; hidden folders are skipped."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(folder, n) for n in sorted(files) if is_image_name(n)]
    return found


def folder_classes(root: str) -> list[str]:
    """First-level folder names of root in sorted order: label i is classes[i] (ImageFolder)."""
    if remote.is_uri(root):
        return remote.folder_classes(root)
    return sorted(d for d in os.listdir(root)
                  if not d.startswith(".") and os.path.isdir(os.path.join(root, d)))


def collect(data: str, labels_from_folders: bool = False) -> list[Item]:
    """The items --data stands for, in order; a ResnetError if it names nothing usable.

    A directory is walked recursively in sorted order. With `labels_from_folders`, an image's
    label is the index of its first-level folder among folder_classes(data); images directly
    in `data` get none.
    """
    if not data:
        raise ResnetError("no input given: pass --data=LIST, a directory or an image")
    if remote.is_uri(data):
        return _collect_remote(data, labels_from_folders)
    if labels_from_folders and not os.path.isdir(data):
        raise ResnetError(f"{data}: --labels_from_folders needs --data to be a directory of "
                          "class folders")
    if os.path.isdir(data):
        paths = _walk(data)
        if not paths:
            raise ResnetError(f"{data}: directory holds no image files")
        index = {name: i for i, name in enumerate(folder_classes(data))}
        items = []
        for path in paths:
            top = os.path.relpath(path, data).split(os.sep)[0]
            label = index.get(top) if labels_from_folders else None
            items.append(Item(path, path, label))
        return items
    if not os.path.exists(data):
        raise ResnetError(f"{data}: input list or image not found")
    if is_image_name(data):
        return [Item(data, data)]
    items = read_list(data)
    if not items:
        raise ResnetError(f"{data}: image list is empty")
    return items


def _collect_remote(data: str, labels_from_folders: bool) -> list[Item]:
    """collect for a URI: a prefix ('/' at the end, or one holding objects), an image, or a
    list."""
    what = None if data.endswith("/") else remote.kind(data)
    if what is None and not data.endswith("/"):
        raise ResnetError(f"{data}: input list or image not found")
    if labels_from_folders and what == "file":
        raise ResnetError(f"{data}: --labels_from_folders needs --data to be a prefix of "
                          "class folders")
    if what == "file":
        if is_image_name(remote.name(data)):
            return [Item(data, data)]
        items = read_remote_list(data)
        if not items:
            raise ResnetError(f"{data}: image list is empty")
        return items
    uris = remote.list_images(data)
    if not uris:
        raise ResnetError(f"{data}: prefix holds no image files")
    index = {name: i for i, name in
             enumerate(remote.folder_classes(data) if labels_from_folders else [])}
    items = []
    for uri in uris:
        top, _, rest = remote.relative(uri, data).partition("/")
        items.append(Item(uri, uri, index.get(top) if rest else None))
    return items
