"""Files that grow in place (text, failed.txt, a pickle batch being written): opened safely,
checked against the journal before --resume touches them, and their lines escaped.

Opening: a fresh run removes whatever name is there (a leftover, or a link someone planted:
unlinking a name never touches what it points to) and creates the file with `open_new`
(O_CREAT|O_EXCL|O_NOFOLLOW); --resume reopens it with `open_existing` (O_NOFOLLOW, regular
files only). A file is only ever cut back to its recorded size, never extended: a file
shorter than the journal says is refused.

Checking: the journal records each file's committed size and the sha256 of its last
committed block (up to TAIL bytes before that size; `tail_digest`), so a resume finds a file
that was truncated, replaced or edited near its end, without rereading the whole file.

Escaping: line-oriented files (images.txt, failed.txt, predict_failed.txt) hold one record
per line, fields split by a tab, so a backslash, newline, carriage return or tab inside a
name or message is written as `\\\\`, `\\n`, `\\r`, `\\t` (`escape`) and read back with
`unescape`. Text without those characters is written unchanged.
"""
from __future__ import annotations

import hashlib
import os
import stat

from resnet.common.files import open_existing, open_new
from resnet.errors import ResnetError, file_error

#: bytes before a file's committed size whose sha256 the journal records
TAIL = 1 << 16
AGAIN = "pass --overwrite to start again"
_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNESCAPES = {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}


def escape(text: str) -> str:
    """`text` on one line with no tab: backslash, newline, CR and tab as two-character escapes."""
    if not any(c in text for c in _ESCAPES):
        return text
    return "".join(_ESCAPES.get(c, c) for c in text)


def unescape(text: str) -> str:
    """What `escape` was given (an unknown escape such as `\\x` is kept as it is)."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in _UNESCAPES:
            out.append(_UNESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def create(path: str, mode: str = "w+b"):
    """`path` created anew for this run: an earlier file or link of that name is removed
    first; one that reappears before the create is refused (someone else is writing here)."""
    if os.path.isdir(path) and not os.path.islink(path):
        raise ResnetError(f"{path}: is a directory, expected a file this run writes")
    try:
        if os.path.lexists(path):
            os.unlink(path)
        return open_new(path, mode)
    except FileExistsError:
        raise ResnetError(f"{path}: appeared while this run was creating it (another process "
                          "writes in this folder); refused") from None
    except OSError as e:
        raise ResnetError(file_error(path, e)) from None


def reopen(path: str, size: int):
    """`path` (this run's regular file, never followed through a link) open for appending
    after its first `size` bytes, the rest cut off; a file shorter than `size` is refused."""
    try:
        f = open_existing(path, "r+b")
    except OSError as e:
        raise ResnetError(_refusal(path, e)) from None
    try:
        have = os.fstat(f.fileno()).st_size
        if have < size:
            raise ResnetError(f"{path}: {have} bytes, but {size} were recorded as written; "
                              f"{AGAIN}")
        f.truncate(size)
        f.seek(size)
    except BaseException:
        f.close()
        raise
    return f


def _refusal(path: str, e: OSError) -> str:
    if os.path.islink(path):
        return f"{path}: is a symbolic link, not the file this run wrote; {AGAIN}"
    return f"{file_error(path, e)}; cannot resume ({AGAIN})"


def tail_digest(fd: int, size: int) -> str:
    """sha256 of the TAIL bytes before `size` in the open file `fd` (all of a shorter one)."""
    start = max(0, size - TAIL)
    data = os.pread(fd, size - start, start)
    return hashlib.sha256(data).hexdigest()


def check(path: str, size: int, digest: str | None, what: str = "recorded") -> None:
    """Refuse (one line naming `path`) unless `path` is a regular file (not a link) of at
    least `size` bytes whose last committed block has sha256 `digest` (None: not checked)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ResnetError(f"{path}: missing, though {size} bytes were {what}; {AGAIN}") \
            from None
    except OSError as e:
        raise ResnetError(f"{file_error(path, e)}; cannot resume ({AGAIN})") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
        raise ResnetError(f"{path}: not a regular file (a link or other object where this "
                          f"run wrote a file); {AGAIN}")
    if st.st_size < size:
        raise ResnetError(f"{path}: {st.st_size} bytes, but {size} were {what}; {AGAIN}")
    if digest is None:
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as e:
        raise ResnetError(f"{file_error(path, e)}; cannot resume ({AGAIN})") from None
    try:
        same = tail_digest(fd, size) == digest
    finally:
        os.close(fd)
    if not same:
        raise ResnetError(f"{path}: its first {size} bytes differ from what this run wrote "
                          f"(checksum of the last committed block); {AGAIN}")


def count_lines(path: str, size: int) -> int:
    """Newlines in the first `size` bytes of `path` (one record each)."""
    n = 0
    with open(path, "rb") as f:
        left = size
        while left > 0:
            block = f.read(min(left, 1 << 22))
            if not block:
                break
            n += block.count(b"\n")
            left -= len(block)
    return n


def number(value, path: str, key: str, most: int | None = None) -> int:
    """`value` if it is a whole number from 0 to `most`; else a one-line refusal."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 \
            or (most is not None and value > most):
        limit = f" from 0 to {most}" if most is not None else " (0 or more)"
        raise ResnetError(f"{path}: '{key}' is {str(value)[:40]!s}, expected a whole "
                          f"number{limit}; {AGAIN}")
    return value


def digest_field(value, path: str, key: str) -> str | None:
    """A recorded sha256 (64 hex digits), or None where an older run recorded none."""
    if value is None:
        return None
    if not (isinstance(value, str) and len(value) == 64
            and all(c in "0123456789abcdef" for c in value)):
        raise ResnetError(f"{path}: '{key}' is not a sha256 checksum; {AGAIN}")
    return value
