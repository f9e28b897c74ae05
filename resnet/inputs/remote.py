"""Images in object storage: `--data=s3://bucket/prefix/` and s3:// lines in image lists.

It exists so that every runner reads remote images the same way: the decoding workers call
read_bytes (local runner) as a Ray task would, each process keeping its own filesystem
objects, made on first use (a spawned worker starts with none). pyarrow.fs does the I/O, so
any URI it knows works (s3://, gs://, ...). Credentials and the endpoint come from the usual
AWS_* variables; pyarrow's from_uri itself reads AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3 (an
S3FileSystem built directly would not). A key is taken literally, as the aws CLI does (no
%-decoding). Every failure is a one-line ResnetError (listing) or ImageError (one object).
"""
from __future__ import annotations

import os
import posixpath
import re
import threading

from resnet.errors import ImageError, ResnetError, first_line
from resnet.inputs.facts import is_image_name

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")  # 2+ letters: C:\ or C:/ is a path
_ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
_filesystems: dict = {}  # (scheme, bucket, query, endpoint) -> (filesystem, its root path)
_lock = threading.Lock()  # thread decoders share this process's cache


def is_uri(path) -> bool:
    """True for scheme://... with a scheme of two letters or more (never a drive letter)."""
    return isinstance(path, str) and _URI.match(path) is not None


def absolute(path: str) -> str:
    """A local path made absolute; a URI as it is."""
    return path if is_uri(path) else os.path.abspath(path)


def join(base_uri: str, path: str) -> str:
    """`path` from a list at `base_uri` resolved as a URL: a URI as it is, '/x' from the
    bucket's root, 'x' and '../x' from the list's folder."""
    if is_uri(path):
        return path
    scheme, netloc, base, query = _split(base_uri)
    key = path if path.startswith("/") else posixpath.dirname(base) + "/" + path
    key = posixpath.normpath(key) if "/." in "/" + path else key
    return f"{scheme}://{netloc}/{key.lstrip('/')}" + (f"?{query}" if query else "")


def name(uri: str) -> str:
    """The object's path without the ?query, for suffix checks."""
    return uri.split("?", 1)[0]


def read_bytes(uri: str) -> bytes:
    """The whole object, or an ImageError naming the URI and what is wrong."""
    fs, path = _filesystem(uri, ImageError)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except Exception as e:
        raise ImageError(f"{uri}: {_reason(e, fs, path)}") from None


def kind(uri: str) -> str | None:
    """'file', 'dir' (a prefix holding objects) or None (nothing there)."""
    pafs = _pyarrow_fs(uri)
    fs, path = _filesystem(uri)
    path = path.rstrip("/")
    try:
        info = fs.get_file_info(path)
    except Exception as e:
        raise ResnetError(f"{uri}: {_reason(e, fs, path)}") from None
    return {pafs.FileType.File: "file", pafs.FileType.Directory: "dir"}.get(info.type)


def _entries(uri: str) -> list[tuple[str, bool]]:
    """(path relative to the prefix, is a file) of everything under the prefix uri."""
    pafs = _pyarrow_fs(uri)
    fs, base = _filesystem(uri)
    base = base.rstrip("/")
    try:  # allow_not_found would also hide a missing bucket
        infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
    except FileNotFoundError:
        return []  # nothing under the prefix
    except Exception as e:
        raise ResnetError(f"{uri}: {_reason(e, fs, base)}") from None
    cut = len(base) + 1 if base else 0
    return [(i.path[cut:], i.type == pafs.FileType.File) for i in infos
            if i.path.startswith(base) and i.type != pafs.FileType.NotFound]


def _child(uri: str, rel: str) -> str:
    head, _, query = uri.partition("?")
    return head.rstrip("/") + "/" + rel + (f"?{query}" if query else "")


def list_images(uri: str) -> list[str]:
    """URIs of the images under the prefix `uri`, recursively; [] if there are none.

    Names must pass is_image_name; a path component starting with '.' hides what is under it.
    The order is a local copy's walk (each folder's images by name, then its subfolders by
    name), so a tree gives the same rows from storage as from disk.
    """
    found = []
    for rel, is_file in _entries(uri):
        parts = rel.split("/")
        if is_file and is_image_name(rel) and not any(p.startswith(".") for p in parts):
            found.append(([(1, p) for p in parts[:-1]] + [(0, parts[-1])], rel))
    return [_child(uri, rel) for _, rel in sorted(found)]


def folder_classes(uri: str) -> list[str]:
    """First-level "folder" names under the prefix `uri`, sorted (ImageFolder's rule)."""
    return sorted({rel.split("/")[0] for rel, is_file in _entries(uri)
                   if (not is_file or "/" in rel) and not rel.startswith(".")})


def relative(uri: str, prefix: str) -> str:
    """The key of `uri` below the prefix `prefix` (both as list_images writes them)."""
    return name(uri)[len(name(prefix).rstrip("/")) + 1:]


def _split(uri: str) -> tuple[str, str, str, str]:
    """scheme, bucket (or host), key, ?query; a '#' is part of the key, not a fragment."""
    scheme, _, rest = uri.partition("://")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    return scheme, netloc, "/" + path, query


def _pyarrow_fs(uri: str):
    try:
        from pyarrow import fs
    except ImportError:
        raise ResnetError(f"{uri}: reading URIs needs pyarrow: pip install pyarrow") from None
    return fs


def _filesystem(uri: str, error=ResnetError):
    """(filesystem, path of uri in it), the filesystem made once per scheme, bucket and
    endpoint in this process."""
    pafs = _pyarrow_fs(uri)
    scheme, netloc, path, query = _split(uri)
    key = (scheme.lower(), netloc, query, tuple(os.environ.get(v) for v in _ENDPOINT_VARS))
    with _lock:
        made = _filesystems.get(key)
        if made is None:
            root = f"{scheme}://{netloc}/" + (f"?{query}" if query else "")
            try:
                fs, root_path = pafs.FileSystem.from_uri(root)
            except Exception as e:
                raise error(f"{uri}: {_reason(e)}") from None
            made = _filesystems[key] = (fs, root_path.rstrip("/"))
    fs, root_path = made
    return fs, root_path + "/" + path.lstrip("/")


def _endpoint() -> str:
    return next((os.environ[v] for v in _ENDPOINT_VARS if os.environ.get(v)), "the S3 endpoint")


def _reason(error: Exception, fs=None, path: str | None = None) -> str:
    """What is wrong, in a few words, from a pyarrow / AWS SDK error."""
    text = str(error)
    if "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text or re.search(
            r"Bucket '[^']*' not found", text):
        return "no such bucket"
    if isinstance(error, FileNotFoundError):
        if fs is not None and path and type(fs).__name__ == "S3FileSystem":
            return "no such bucket" if _bucket_missing(fs, path) else "no such key"
        return "not found"
    if (isinstance(error, PermissionError) or "ACCESS_DENIED" in text
            or "AccessDenied" in text or "HTTP response code: 403" in text):
        return "access denied (check the AWS_* credentials or the bucket's policy)"
    if "NETWORK_CONNECTION" in text or "curlCode" in text or "Could not connect" in text:
        return f"cannot connect to {_endpoint()} ({first_line(text.rsplit('Details: ', 1)[-1])})"
    if "Unrecognized filesystem type" in text:
        return "not a URI scheme pyarrow.fs knows (s3://, gs://, hdfs://, file://)"
    return first_line(text.split("AWS Error ", 1)[-1])


def _bucket_missing(fs, path: str) -> bool:
    from pyarrow import fs as pafs

    try:
        return fs.get_file_info(path.split("/", 1)[0]).type == pafs.FileType.NotFound
    except Exception:
        return False
