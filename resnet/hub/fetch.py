"""Fetching one published file into the weights cache: resumed, bounded, verified.

- Where: the publisher's https locations in order, or only the mirror the user set
  (RESNET_WEIGHTS_MIRROR: an https/http URL or a folder, holding either the publishers'
  paths under their host name, `MIRROR/download.pytorch.org/models/x.pth`, or the files
  side by side, `MIRROR/x.pth`). Plain http is fetched only from a mirror the user named.
- Resumed: bytes go to NAME.part in the cache's download folder; a connection cut mid-way is
  picked up with an HTTP Range request, in this run (a few tries) or the next one.
- Bounded: never more than the size the publisher states, or MAX_BYTES when none is stated;
  a server that ignores Range or sends an HTML page instead of the file is caught.
- Verified: against the checksum the publisher states (torch.hub's sha256 prefix, md5, sha1,
  sha256); where none is stated, against the sha256 this cache recorded the first time.
  A file that fails is deleted, and the message gives both sums.

Imports `resnet.common` and `resnet.errors` only.
"""
from __future__ import annotations

import http.client
import logging
import os
import shutil
import socket
import time
import urllib.error
import urllib.parse
import urllib.request

from resnet.common.files import file_digest, open_existing, open_new
from resnet.common.progress import Progress
from resnet.errors import ResnetError

log = logging.getLogger("resnet")

MIRROR_ENV = "RESNET_WEIGHTS_MIRROR"
#: the most bytes taken from a location when the publisher states no size
MAX_BYTES = 4 << 30
TIMEOUT = 30.0  # seconds without a byte before a connection counts as cut
TRIES = 4  # connections per location: the first and the resumes after cuts
CHUNK = 1 << 20
#: checksum kind -> the hashlib algorithm it is a digest of
_ALGORITHMS = {"sha256": "sha256", "sha256-prefix": "sha256", "md5": "md5", "sha1": "sha1"}
_HTML = (b"<!doctype html", b"<html", b"<?xml", b"<head")


class Unreachable(ResnetError):
    """No location gave the file (offline, refused, missing): the caller says the ways out."""


def locations(urls, mirror: str | None = None) -> list[str]:
    """The URLs to try for a file published at `urls`: the mirror's (both layouts) when one
    is set, else the publisher's own."""
    mirror = os.environ.get(MIRROR_ENV, "") if mirror is None else mirror
    if not mirror:
        return list(urls)
    out = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        for rel in (parts.netloc + parts.path, parts.path.rsplit("/", 1)[-1]):
            if "://" in mirror:
                out.append(mirror.rstrip("/") + "/" + rel.lstrip("/"))
            else:
                out.append(urllib.parse.urljoin(
                    "file:", urllib.request.pathname2url(
                        os.path.join(os.path.abspath(mirror), rel))))
    return list(dict.fromkeys(out))


def digest(path: str, kind: str) -> str:
    """The file's digest in the algorithm of checksum kind `kind`."""
    return file_digest(path, _ALGORITHMS[kind])


def is_sha256(kind: str) -> bool:
    """Whether checksum kind `kind` is checked against the file's sha256."""
    return _ALGORITHMS[kind] == "sha256"


def matches(path: str, kind: str, value: str) -> tuple[bool, str]:
    """(whether the file has the stated checksum, what it has)."""
    got = digest(path, kind)
    if kind == "sha256-prefix":
        return got.startswith(value.lower()), got
    return got == value.lower(), got


def fetch(urls, part_dir: str, file_name: str, size: int | None, label: str) -> str:
    """Download the file published at `urls` to `part_dir/file_name` and return that path.
    A NAME.part left by a cut download is resumed. Raises Unreachable naming the location
    tried when none answers with the file; other failures raise ResnetError."""
    final = os.path.join(part_dir, file_name)
    if os.path.isfile(final) and not os.path.islink(final):
        return final  # a finished download the last run did not get to convert
    part = final + ".part"
    tried = []
    for url in locations(urls):
        scheme = urllib.parse.urlsplit(url).scheme
        mirror = bool(os.environ.get(MIRROR_ENV))
        if scheme not in ("https", "file") and not (scheme == "http" and mirror):
            tried.append(f"{url} (plain http is used only from a mirror you set)")
            continue
        try:
            _get(url, part, size, label)
        except Unreachable as e:
            tried.append(str(e))
            continue
        os.replace(part, final)
        return final
    where = tried[0] if len(tried) == 1 else "; ".join(tried[:3])
    raise Unreachable(
        f"{label}: cannot download {file_name}: {where}. Offline or blocked? Set "
        f"{MIRROR_ENV}=URL-or-folder holding the file (the publishers' paths or the file "
        "itself), or fetch it by hand and pass --weights_file=PATH")


def _get(url: str, part: str, size: int | None, label: str) -> None:
    """Fill `part` from `url`, resuming what it holds; Unreachable when the location does not
    give the file, ResnetError when what it gives is not the file."""
    limit = size or MAX_BYTES
    for attempt in range(TRIES):
        have = _size(part)
        if size is not None and have >= size:  # all there: only the checksum can tell
            return
        try:
            done = _transfer(url, part, have, size, limit, label)
        except _Cut as e:
            if _size(part) > have and attempt + 1 < TRIES:
                log.info("%s: connection cut at %d bytes (%s); resuming", label, _size(part), e)
                time.sleep(0.2 * (attempt + 1))
                continue
            if _size(part) == 0:
                _remove(part)
            raise Unreachable(f"{url} ({e})") from None
        if done:
            return
    raise Unreachable(f"{url} (the download kept stopping early)")


class _Cut(Exception):
    """The connection failed or ended before the file did."""


def _transfer(url: str, part: str, have: int, size: int | None, limit: int, label: str) -> bool:
    """One connection: append to `part` from byte `have`. True when the file is complete."""
    request = urllib.request.Request(url, headers={"User-Agent": "resnet-weights/1"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the part is longer than the file: start over
            _remove(part)
            raise _Cut("the server refused the resume; starting over") from None
        raise Unreachable(f"{url} (HTTP {e.code} {e.reason})") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise Unreachable(f"{url} ({reason})") from None
    with response:
        status = getattr(response, "status", None) or 200
        start = 0
        if status == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != have:
                raise ResnetError(f"{label}: {url}: the server resumed at byte {start}, "
                                  f"not {have}")
        elif have:  # the server ignored the Range: the whole file again
            log.info("%s: %s does not resume downloads; starting over", label, url)
            _remove(part)
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        if total is not None and total > limit:
            raise ResnetError(f"{label}: {url} is {total} bytes, " + (
                f"the publisher states {size}" if size else f"more than the {limit} allowed"))
        kind = (response.headers.get("Content-Type") or "").lower()
        progress = Progress(total or size or 0, f"downloading {os.path.basename(part[:-5])}",
                            unit="B", initial=have)
        try:
            return _copy(response, part, have, total, limit, kind, url, label, progress)
        finally:
            progress.close()


def _copy(response, part, have, total, limit, kind, url, label, progress) -> bool:
    mode = "ab" if have else "wb"
    f = open_existing(part, mode) if have else open_new(part, mode)
    got = have
    with f:
        first = True
        while True:
            try:
                block = response.read(CHUNK)
            except (OSError, http.client.HTTPException, socket.timeout) as e:
                raise _Cut(str(e) or type(e).__name__) from None
            if not block:
                break
            if first and not have and (kind.startswith("text/html")
                                       or block.lstrip()[:16].lower().startswith(_HTML)):
                f.close()
                _remove(part)
                raise ResnetError(f"{label}: {url} sent a web page, not the file (an error or "
                                  "login page?)")
            first = False
            got += len(block)
            if got > limit:
                f.close()
                _remove(part)
                raise ResnetError(f"{label}: {url} sent more than {limit} bytes")
            f.write(block)
            progress.update(len(block))
    if total is not None and got < total:
        raise _Cut(f"got {got} of {total} bytes")
    return True


def _range_start(value: str) -> int:
    try:  # "bytes 100-199/200"
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return -1


def copy_local(path: str, dest: str, limit: int) -> str:
    """A file the user fetched by hand (--weights_file), copied into the cache's download
    folder so it is verified and converted like a download."""
    if not os.path.isfile(path):
        raise ResnetError(f"{path}: " + ("is a directory, expected the downloaded file"
                                         if os.path.isdir(path) else "file not found"))
    if os.path.getsize(path) > limit:
        raise ResnetError(f"{path}: {os.path.getsize(path)} bytes, more than {limit}")
    _remove(dest)
    with open(path, "rb") as src, open_new(dest) as out:
        shutil.copyfileobj(src, out, CHUNK)
    return dest


def _size(path: str) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
