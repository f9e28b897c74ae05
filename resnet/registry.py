"""Registries: a name -> entry dict filled by a decorator in the entry's own module.

Adding a model family, importer, output format, runner or job is adding one file that
registers itself; the CLI's choices and the contract tests are read from the registry.
A registry bound to a package imports the package's modules the first time it is asked
what it holds, so entries need no list kept by hand (and nothing loads before it is needed);
modules whose names start with `_` are helpers and are not imported by the scan.
"""
from __future__ import annotations

import importlib
import pkgutil

from resnet.errors import ResnetError


class Registry:
    def __init__(self, kind: str, package: str | None = None):
        self.kind, self.package = kind, package
        self._entries: dict = {}
        self._loaded = package is None

    def register(self, name: str):
        """Decorator: `@REGISTRY.register("name")` on a class or function."""
        def add(obj):
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = obj
            return obj
        return add

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            pkg = importlib.import_module(self.package)
            for mod in pkgutil.iter_modules(pkg.__path__):
                if not mod.name.startswith("_"):  # _helpers are not entries
                    importlib.import_module(f"{self.package}.{mod.name}")

    def names(self) -> list[str]:
        self._load()
        return list(self._entries)

    def items(self):
        self._load()
        return list(self._entries.items())

    def __contains__(self, name) -> bool:
        self._load()
        return name in self._entries

    def __getitem__(self, name: str):
        self._load()
        try:
            return self._entries[name]
        except KeyError:
            raise ResnetError(f"unknown {self.kind} {name!r}: choose one of "
                              f"{', '.join(self._entries)}") from None
