"""A registry name -> a model folder in the weights cache, downloaded and converted once.

The cache (`~/.cache/resnet/weights`, or RESNET_WEIGHTS_DIR) holds `models/NAME/` (a model
folder with its model card, which names the entry it came from), `downloads/` (files being
fetched: a cut download resumes from there) and `sha256.json` (the sums recorded on first
download for files whose publisher states none). A run that finds `models/NAME/` complete
uses it without a request. Otherwise it takes the entry's lock in the cache (a second run
asking for the same name waits for the first, then finds the folder), fetches and verifies
each file, converts with the entry's importer into a private folder and renames that into
place: a folder under `models/` is always whole. The downloads are removed once converted.

Imports `resnet.hub`, `resnet.importers`, `resnet.modelio`, `resnet.models`, `resnet.common`.
"""
from __future__ import annotations

import difflib
import json
import logging
import os
import shutil
import tarfile
from dataclasses import replace

from resnet.common.files import atomic_write, open_new, private_dir
from resnet.common.lock import folder_lock
from resnet.errors import ResnetError
from resnet.hub import WEIGHTS, fetch
from resnet.hub.entry import Download, Weights

log = logging.getLogger("resnet")

DIR_ENV = "RESNET_WEIGHTS_DIR"
SUMS = "sha256.json"
#: the mean file's name inside a model folder that carries one
MEAN_NAMES = {".meta": "mean.meta", ".binaryproto": "mean.binaryproto", ".npy": "mean.npy"}


def cache_dir() -> str:
    own = os.environ.get(DIR_ENV)
    if own:
        return os.path.abspath(os.path.expanduser(own))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "resnet", "weights")


def is_name(text: str | None) -> bool:
    """Whether --model=TEXT means a registry entry (a folder path keeps meaning the folder)."""
    return bool(text) and not os.path.exists(text) and text in WEIGHTS


def entry(name: str) -> Weights:
    if name not in WEIGHTS:
        close = difflib.get_close_matches(name, WEIGHTS.names(), n=3, cutoff=0.5)
        raise ResnetError(f"unknown pretrained weights {name!r}"
                          + (f" (did you mean: {', '.join(close)}?)" if close else "")
                          + "; list them with --job=models")
    return WEIGHTS[name]


def model_dir(name: str) -> str:
    return os.path.join(cache_dir(), "models", name)


def installed(name: str) -> bool:
    """Whether the cache holds the converted folder of `name` (written whole, by rename)."""
    card = os.path.join(model_dir(name), "model.json")
    try:
        with open(card, "rb") as f:
            doc = json.loads(f.read(1 << 20))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and (doc.get("source") or {}).get("registry") == name


def ensure(name: str, weights_file: str | None = None) -> str:
    """The cache folder of registry entry `name`, downloading and converting it first if
    needed (`weights_file`: the weights file fetched by hand, checked like a download)."""
    item = entry(name)
    target = model_dir(name)
    if installed(name) and not weights_file:
        return target
    root = cache_dir()
    with folder_lock(root, name=f".{name}.lock", subject=f"the weights cache entry {name}",
                     create=True, wait=True):
        if installed(name) and not weights_file:  # another run installed it meanwhile
            return target
        downloads = os.path.join(root, "downloads", name)
        os.makedirs(downloads, exist_ok=True)
        paths, sha256, first = {}, {}, {}
        try:
            for file in item.files:
                given = weights_file if file.role == "weights" else None
                paths[file.role], sha256[file.role] = _get(item, file, downloads, given, first)
            _install(item, paths, target, sha256["weights"])
        except BaseException:  # whole files are not kept for a later run to trust unchecked
            for path in paths.values():  # (a download cut mid-transfer stays, to resume)
                if os.path.exists(path):
                    os.unlink(path)
            raise
        if first:  # recorded once the files proved good: a broken first download is not
            _record(first)  # the sum later downloads are held to
        shutil.rmtree(downloads, ignore_errors=True)
    log.info("%s: installed in %s", name, target)
    return target


def _get(item: Weights, file: Download, downloads: str, given: str | None,
         first: dict) -> tuple[str, str]:
    """One file of the entry, fetched (or copied from `given`) and verified: (its path, its
    sha256). The sha256 of a file with no published checksum, seen for the first time, is
    added to `first`."""
    label = item.name
    if given:
        path = fetch.copy_local(given, os.path.join(downloads, file.file_name),
                                file.size or fetch.MAX_BYTES)
        label = given
    else:
        path = fetch.fetch(file.urls, downloads, file.file_name, file.size, label)
    try:
        return path, _verify(item, file, path, label, first)
    except ResnetError:
        os.unlink(path)
        raise


def _verify(item: Weights, file: Download, path: str, label: str, first: dict) -> str:
    """Check the file's size and checksum; returns its sha256 (computed once: the checksum's
    own digest where that is a sha256)."""
    size = os.path.getsize(path)
    if file.size is not None and size != file.size:
        raise ResnetError(f"{label}: {size} bytes, but {item.publisher} states {file.size} "
                          "(a truncated or different file); it was deleted")
    sum_ = file.checksum
    if sum_ is not None and sum_.member is None:
        ok, got = fetch.matches(path, sum_.kind, sum_.value)
        if not ok:
            raise ResnetError(f"{label}: checksum mismatch: {item.publisher} states "
                              f"{sum_.kind} {sum_.value}, the file has {got}; it was deleted")
        log.info("%s: %s %s as %s states", file.file_name, sum_.kind, sum_.value,
                 item.publisher)
        return got if fetch.is_sha256(sum_.kind) else fetch.digest(path, "sha256")
    if sum_ is None:
        got = fetch.digest(path, "sha256")
        want = _recorded().get(file.urls[0])
        if want and want != got:
            raise ResnetError(f"{label}: checksum mismatch: this cache recorded sha256 {want} "
                              f"on the first download of {file.file_name}, the file has "
                              f"{got}; it was deleted")
        if not want:
            first[file.urls[0]] = got
            log.info("%s: sha256 %s (%s states no checksum: recorded in %s, and later "
                     "downloads must match it)", file.file_name, got, item.publisher,
                     os.path.join(cache_dir(), SUMS))
        return got
    return fetch.digest(path, "sha256")  # the checksum is a zip member's (_member checks it)


def _record(new: dict) -> None:
    """Add sums to the cache's record (under its own lock: runs installing other entries
    may record theirs at the same time)."""
    with folder_lock(cache_dir(), name=f".{SUMS}.lock", subject=SUMS, wait=True):
        sums = {**_recorded(), **new}
        atomic_write(os.path.join(cache_dir(), SUMS),
                     (json.dumps(sums, indent=1, sort_keys=True) + "\n").encode())


def _recorded() -> dict:
    path = os.path.join(cache_dir(), SUMS)
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read(1 << 22))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ResnetError(f"{path}: unreadable ({e}); remove it to record the sums again") \
            from None
    return {k: v for k, v in doc.items() if isinstance(k, str) and isinstance(v, str)} \
        if isinstance(doc, dict) else {}


def _install(item: Weights, paths: dict, target: str, sha256: str) -> None:
    """Convert into a private folder beside `target`, add the mean and the card, rename."""
    from resnet.modelio import modelinfo

    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    with private_dir(parent) as tmp:
        staged = os.path.join(tmp, item.name)
        if item.source_format == "paddle_v1":  # the archive holds a folder, not one file
            info = _unpack_v1(item, paths["weights"], staged)
        else:
            from resnet.importers.base import convert

            weights = _member(item, item.weights, paths["weights"], tmp)
            info = convert(item.source_format, weights, staged, arch=item.arch, **item.convert)
        recipe = item.recipe or info.preprocessing
        if item.mean is not None:
            mean = _member(item, item.mean, paths["mean"], tmp)
            name = MEAN_NAMES.get(os.path.splitext(mean)[1], "mean.meta")
            shutil.copyfile(mean, os.path.join(staged, name))
            recipe = replace(recipe, mean_file=name)
        source = {**(info.source or {}), **_source(item, sha256)}
        modelinfo.write(staged, replace(info, preprocessing=recipe, source=source))
        modelinfo.read(staged)  # the card reads back (the mean file included)
        if os.path.lexists(target):  # a half-written or older folder: moved aside, not merged
            os.rename(target, os.path.join(tmp, ".replaced"))
        os.rename(staged, target)


def _source(item: Weights, sha256: str) -> dict:
    """The card's source: the entry, and the downloaded weights file's sha256."""
    sum_ = item.weights.checksum
    out = {"registry": item.name, "publisher": item.publisher, "url": item.weights.urls[0],
           "file": item.weights.file_name, "sha256": sha256,
           "license": item.license}
    if sum_ is not None:
        out["checksum"] = {"kind": sum_.kind, "value": sum_.value, "stated_in": sum_.stated_in}
    for key in ("top1", "top5"):
        if getattr(item, key) is not None:
            out[key] = getattr(item, key)
    return out


def _member(item: Weights, file: Download, path: str, tmp: str) -> str:
    """The file to convert: the download itself, or its zip member (checked where the
    publisher's checksum is the member's, as MXNet Gluon's is)."""
    if not file.member or not path.endswith((".zip", ".tar.gz")):
        return path
    if path.endswith(".tar.gz"):
        return _tar_member(path, file.member, tmp)
    from resnet.importers._archive import open_zip, read_member
    from resnet.importers.base import largest_model

    with open_zip(path) as z:
        data = read_member(z, file.member, path, largest_model())
    out = os.path.join(tmp, os.path.basename(file.member))
    with open_new(out) as f:
        f.write(data)
    sum_ = file.checksum
    if sum_ is not None and sum_.member:
        ok, got = fetch.matches(out, sum_.kind, sum_.value)
        if not ok:
            os.unlink(path)
            raise ResnetError(f"{item.name}: checksum mismatch: {item.publisher} states "
                              f"{sum_.kind} {sum_.value} for {file.member}, the file has "
                              f"{got}; the download was deleted")
    return out


def _tar_member(path: str, name: str, tmp: str) -> str:
    """One regular file of a .tar.gz (the v1 zoo's mean_meta_224/mean.meta), bounded."""
    from resnet.importers.base import largest_param

    out = os.path.join(tmp, os.path.basename(name))
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.name.lstrip("./") != name:
                    continue
                if not member.isreg() or member.size > largest_param():
                    break
                with tar.extractfile(member) as src, open_new(out) as f:
                    shutil.copyfileobj(src, f, 1 << 20)
                return out
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ResnetError(f"{path}: not a readable .tar.gz ({e})") from None
    raise ResnetError(f"{path}: no regular file {name} inside")


def _unpack_v1(item: Weights, path: str, staged: str):
    """The v1 zoo's tar.gz: its FOLDER/ of v1 parameter files, regular files only, each
    bounded, into `staged`; validated against the architecture."""
    from resnet.importers.base import largest_model, largest_param
    from resnet.modelio import modelinfo, params as params_io
    from resnet.models import ARCHS, build_arch

    spec = build_arch(item.arch)
    folder = item.weights.member or ""
    os.makedirs(staged)
    total = 0
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                name = member.name.lstrip("./")
                if member.isdir() or not name.startswith(folder + "/"):
                    continue
                base = name[len(folder) + 1:]
                if not member.isreg() or not base or "/" in base or base.startswith("."):
                    raise ResnetError(f"{path}: unexpected archive member {member.name!r:.100}")
                total += member.size
                if member.size > largest_param() or total > largest_model():
                    raise ResnetError(f"{path}: {member.name!r:.100} is larger than any "
                                      "parameter of the model")
                with tar.extractfile(member) as src, open_new(os.path.join(staged, base)) as out:
                    shutil.copyfileobj(src, out, 1 << 20)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ResnetError(f"{path}: not a readable .tar.gz ({e})") from None
    values = params_io.load_model(staged, spec)
    params_io.check_values(spec, values, lambda name: f"{path}: {name}")
    spelling = ARCHS[item.arch].v1_spelling or (None, None)
    return modelinfo.ModelInfo(*spelling, item.recipe, item.classes,
                               {"format": item.source_format, "names": "v1"}, item.arch)


def resolve(model: str | None, weights_file: str | None = None) -> str | None:
    """--model as given: a registry name becomes its cache folder (installed first if
    needed); anything else (a folder path) is returned unchanged."""
    if model and (is_name(model) or weights_file):
        return ensure(model, weights_file)
    return model
