"""A published checkpoint as data: where the publisher puts it, the checksum the publisher
states, the architecture it fits, how its inputs were preprocessed, its license and accuracy.

Imports `resnet.models` (architecture names, Recipe) and `resnet.hub` (the registry) only.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from resnet.hub import WEIGHTS
from resnet.models.preprocessing import Recipe

#: checksum kind -> the hex length the publisher writes. "sha256-prefix" is torch.hub's rule:
#: the hex digits after the last "-" of the file name start the file's sha256.
CHECKSUM_KINDS = {"sha256": 64, "sha256-prefix": None, "md5": 32, "sha1": 40}
#: source formats that are not a `--from` importer: the v1 zoo's own tar.gz of v1 files
ARCHIVE_FORMATS = ("paddle_v1",)
#: what a download is for: the checkpoint, or a mean image subtracted from the inputs
ROLES = ("weights", "mean")
_NAME = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")


@dataclass(frozen=True)
class Checksum:
    """What the publisher states about the file's bytes."""

    kind: str  # a CHECKSUM_KINDS key
    value: str  # lowercase hex
    #: where the publisher states it ("torchvision models/resnet.py, the file name's hash")
    stated_in: str = ""
    #: None: the downloaded file; else the member of the downloaded zip it is the sum of
    #: (MXNet Gluon states the sha1 of the .params inside its .zip)
    member: str | None = None


def name_hash(file_name: str) -> str:
    """The hex digits after the last "-" of a file name (`resnet18-f37072fd.pth` ->
    `f37072fd`; "" without one): where torch.hub's naming puts the start of the sha256."""
    _, dash, tail = file_name.rsplit(".", 1)[0].rpartition("-")
    return tail if dash else ""


def sha256_prefix(file_name: str, stated_in: str) -> Checksum:
    """The checksum a torch.hub-style file name states."""
    return Checksum("sha256-prefix", name_hash(file_name), stated_in)


@dataclass(frozen=True)
class Download:
    """One file to fetch. `urls` are the publisher's locations, tried in order; a mirror
    (RESNET_WEIGHTS_MIRROR) replaces their scheme and host with its own, keeping the host as
    the first folder."""

    urls: tuple
    #: None: the publisher states no checksum; the sha256 seen on the first download is
    #: recorded in the cache and every later download must match it
    checksum: Checksum | None
    size: int | None = None  # bytes, where the publisher states it
    role: str = "weights"  # a ROLES value
    #: the member of a zip to convert (Gluon: NAME.params), or the folder of a tar.gz
    member: str | None = None

    @property
    def file_name(self) -> str:
        return self.urls[0].rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Weights:
    """A registry entry, named ARCH.TAG."""

    name: str
    arch: str  # a registered architecture (resnet.models.ARCHS)
    source_format: str  # an importer's --from name, or an ARCHIVE_FORMATS value
    files: tuple  # Download, the weights first
    publisher: str  # who publishes the file ("torchvision", "Keras applications", ...)
    license: str  # as the publisher states it, or "not stated"
    #: published accuracy in percent (None: not published) and how it was measured
    top1: float | None = None
    top5: float | None = None
    accuracy_note: str = ""
    #: the publisher's evaluation preprocessing; None: the importer's default for the format
    recipe: Recipe | None = None
    classes: str = "imagenet"
    notes: str = ""
    #: extra keyword arguments for the importer (a ResNet variant where names do not tell)
    convert: dict = field(default_factory=dict)

    @property
    def weights(self) -> Download:
        return next(f for f in self.files if f.role == "weights")

    @property
    def mean(self) -> Download | None:
        return next((f for f in self.files if f.role == "mean"), None)


def problems(entry: Weights) -> list[str]:
    """What is malformed in an entry (empty: well formed): its name, files, URLs, checksums
    and card fields. The architecture and importer are checked where they are registered
    (tests/test_hub.py), which this module may not import."""
    out = []
    if not _NAME.match(entry.name) or entry.name.split(".")[0] != entry.arch:
        out.append(f"name must be ARCH.TAG with ARCH {entry.arch!r}")
    if not entry.files or entry.files[0].role != "weights":
        out.append("the weights file must come first")
    if not entry.publisher or not entry.license:
        out.append("publisher and license must be stated (\"not stated\" where none is)")
    if entry.recipe is None:
        out.append("no preprocessing recipe")
    for file in entry.files:
        if file.role not in ROLES:
            out.append(f"{file.file_name}: role {file.role!r} is not one of {ROLES}")
        if not file.urls or not all(u.startswith("https://") for u in file.urls):
            out.append(f"{file.file_name}: the publisher's locations must be https URLs")
        sum_ = file.checksum
        if sum_ is None:
            continue
        size = CHECKSUM_KINDS.get(sum_.kind, -1)
        if size == -1:
            out.append(f"{file.file_name}: unknown checksum kind {sum_.kind!r}")
        elif not re.fullmatch(r"[0-9a-f]+", sum_.value) or (
                size is not None and len(sum_.value) != size):
            out.append(f"{file.file_name}: {sum_.kind} {sum_.value!r} is not "
                       f"{size or 'some'} lowercase hex digits")
        if sum_.kind == "sha256-prefix" and name_hash(file.file_name) != sum_.value:
            out.append(f"{file.file_name}: a sha256-prefix is the file name's last part")
        if not sum_.stated_in:
            out.append(f"{file.file_name}: say where the publisher states the checksum")
        if sum_.member is not None and sum_.member != file.member:
            out.append(f"{file.file_name}: a member's checksum needs that member converted")
    return out


def add(entry: Weights) -> Weights:
    """Register an entry (sources/*.py call this once per published checkpoint); a malformed
    one fails at import, naming what is wrong."""
    bad = problems(entry)
    if bad:
        raise ValueError(f"weights entry {entry.name}: " + "; ".join(bad))
    return WEIGHTS.register(entry.name)(entry)
