"""Reading pickles without running their code.

v1 mean files and v1 feature batches are pickles; a pickle can name any callable. This
unpickler admits only what numpy needs to rebuild an array (and plain containers), so a file
that asks for anything else is refused before it can do harm.
"""
from __future__ import annotations

import importlib
import pickle

import numpy as np

from resnet.errors import ResnetError, file_error

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


def load(path: str):
    """Unpickle `path` (Python 2 or 3 pickle) admitting only numpy array reconstruction."""
    try:
        with open(path, "rb") as f:
            return _Restricted(f, encoding="latin1").load()
    except OSError as e:
        raise ResnetError(file_error(path, e, "expected a pickle file")) from None
    except pickle.UnpicklingError as e:
        if str(e).startswith("refused global"):
            raise ResnetError(f"{path}: unsafe pickle: {e}; only numpy arrays are allowed") from None
        raise ResnetError(f"{path}: not a valid pickle ({e})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise ResnetError(f"{path}: not a valid pickle ({type(e).__name__}: {e})") from None
