"""Reading pickles without running their code.

v1 mean files and v1 feature batches are pickles; a pickle can name any callable. This
unpickler admits only what numpy needs to rebuild an array (and plain containers), so a file
that asks for anything else is refused before it can do harm.
"""
from __future__ import annotations

import importlib
import os
import pickle
import pickletools

import numpy as np

from resnet.errors import ResnetError, file_error, first_line

_ALLOWED = {
    (core, name)
    for core in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


def _latin1_encode(text, encoding="latin1"):
    """Python 3 writes bytes into protocol-2 pickles as _codecs.encode(text, 'latin1')."""
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"refused global _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _resolve(module: str, name: str):
    if module == "_codecs":
        return _latin1_encode
    # numpy 2 moved numpy.core to numpy._core; Python 2 era files name the old place.
    if module.startswith("numpy.core") and hasattr(np, "_core"):
        module = module.replace("numpy.core", "numpy._core")
    return getattr(importlib.import_module(module), name)


class _Restricted(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return _resolve(module, name)


class _Capped:
    """A file's reader that never returns (or asks for) more than the `size` bytes left."""

    def __init__(self, f, size: int):
        self.f, self.end = f, f.tell() + size

    def tell(self) -> int:
        return self.f.tell()

    def read(self, n: int = -1) -> bytes:
        left = max(self.end - self.f.tell(), 0)
        return self.f.read(left if n is None or n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self.f.readline(max(self.end - self.f.tell(), 0))


def check_lengths(f, size: int) -> None:
    """Walk the pickle at `f`'s position opcode by opcode, building nothing, and raise
    pickle.UnpicklingError unless every length it declares fits the `size` bytes left.

    The C unpickler allocates a BINBYTES8 / BINUNICODE8 / FRAME of the declared length before
    reading it and grows its memo to a declared index, so a 40-byte file could ask for a
    terabyte; after this walk each of those is known to be bounded by the file. `f` is left
    where it was."""
    start = f.tell()
    ops = 0
    try:
        for op, arg, pos in pickletools.genops(_Capped(f, size)):
            ops += 1
            if op.name == "FRAME" and arg > start + size - f.tell():
                raise pickle.UnpicklingError(f"a frame of {arg} bytes at byte {pos} is longer "
                                             "than the file")
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and not 0 <= int(arg) <= ops:
                raise pickle.UnpicklingError(f"memo index {arg} at byte {pos} is out of range")
            if op.name == "STOP":
                break
    except ValueError as e:  # pickletools' word for truncated arguments and bad opcodes
        raise pickle.UnpicklingError(str(e).splitlines()[0] if str(e) else "malformed") \
            from None
    finally:
        f.seek(start)


def load(path: str):
    """Unpickle `path` (Python 2 or 3 pickle) admitting only numpy array reconstruction,
    after check_lengths has bounded every size it declares by the file's own."""
    try:
        with open(path, "rb") as f:
            check_lengths(f, os.fstat(f.fileno()).st_size)
            return _Restricted(f, encoding="latin1").load()
    except OSError as e:
        raise ResnetError(file_error(path, e, "expected a pickle file")) from None
    except pickle.UnpicklingError as e:
        if str(e).startswith("refused global"):
            raise ResnetError(f"{path}: unsafe pickle: {e}; only numpy arrays are allowed") from None
        raise ResnetError(f"{path}: not a valid pickle ({first_line(str(e))})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RecursionError, SystemError) as e:  # SystemError: numpy's dtype on bad state
        raise ResnetError(f"{path}: not a valid pickle ({type(e).__name__}: "
                          f"{first_line(str(e))})") from None
