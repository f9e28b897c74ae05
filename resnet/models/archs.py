"""The architecture registry: name -> family.Arch, filled by the family modules of this
folder (resnet.py, vgg.py) the first time it is asked what it holds.

Imports only `resnet.errors` and `resnet.registry`; the families import it, never the reverse.
"""
from __future__ import annotations

from resnet.errors import ResnetError
from resnet.registry import Registry

#: architecture name -> family.Arch
ARCHS = Registry("architecture", "resnet.models")


def build_arch(name: str):
    """The Spec of a registered architecture, or a one-line error naming the choices."""
    if name not in ARCHS:
        import difflib

        close = difflib.get_close_matches(str(name), ARCHS.names(), n=3, cutoff=0.6)
        raise ResnetError(f"unknown architecture {name!r}"
                          + (f" (did you mean: {', '.join(close)}?)" if close else "")
                          + "; list them with --job=models")
    return ARCHS[name].build()


def arch_names() -> list[str]:
    return ARCHS.names()


def list_models() -> list[dict]:
    """Every registered architecture: name, family, input size, classes, parameter values,
    default feature layers and a line saying what it is."""
    rows = []
    for name, arch in ARCHS.items():
        spec = arch.build()
        rows.append({"name": name, "family": arch.family.name,
                     "input_size": spec.input_size, "classes": spec[spec.names[-1]].shape[0],
                     "params": spec.param_count(),
                     "default_features": spec.default_features(), "summary": arch.summary})
    return rows
