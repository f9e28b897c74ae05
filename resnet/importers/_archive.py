"""Zip members of checkpoints (.pth, .keras) read in bounded memory.

A zip member's header says how large it is once inflated, and deflate shrinks a run of zeros
a thousandfold, so a 3 MB file can hold a 3 GiB member. Each member is read only when its
declared size fits what the caller expects and its compression ratio is one that weights
(random-looking floats) can have; zipfile itself never inflates past the declared size.

Imports nothing of the package but `resnet.errors`.
"""
from __future__ import annotations

import zipfile
import zlib

from resnet.errors import ResnetError

#: members larger than this must not be compressed more than MAX_RATIO times: trained
#: weights barely compress, only zeros do, and a model of zeros is no model
RATIO_FLOOR = 1 << 24
MAX_RATIO = 100


def open_zip(path: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise ResnetError(f"{path}: not a readable zip archive ({e})") from None


def read_member(z: zipfile.ZipFile, name: str, path: str, max_bytes: int) -> bytes:
    """The bytes of member `name`, refused (naming `path` and the member) when it declares
    more than `max_bytes` or is compressed like a zip bomb."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise ResnetError(f"{path}: the archive has no member {name}") from None
    size = info.file_size
    if size > max_bytes:
        raise ResnetError(f"{path}: member {name} declares {size} bytes, more than the "
                          f"{max_bytes} it can hold; refused")
    packed = max(info.compress_size, 1)
    if size > RATIO_FLOOR and size > MAX_RATIO * packed:
        raise ResnetError(f"{path}: member {name} is compressed {size // packed} times "
                          f"({info.compress_size} bytes inflating to {size}): a zip bomb, "
                          "not weights; refused")
    try:
        with z.open(info) as f:
            data = f.read(max_bytes + 1)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError,
            RuntimeError, zlib.error) as e:  # CRC, bad headers, encrypted, unknown methods
        raise ResnetError(f"{path}: member {name} cannot be read ({e})") from None
    if len(data) != size:
        raise ResnetError(f"{path}: member {name} holds {len(data)} bytes, its header says "
                          f"{size}; refused")
    return data
