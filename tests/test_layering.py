"""The package's import layering (resnet/__init__.py states it): every import of resnet/,
at any depth (function-level ones too, which run as surely as the others), read with `ast`.

(a) no import cycle between modules; (b) no room (folder, or top-level module) imports a
room above it in ORDER; (c) building a RunConfig loads neither OpenCV nor Paddle.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "resnet")

#: the rooms, lowest first: a room may import only itself and rooms before it
ORDER = (
    "errors",      # ResnetError and its kinds: everything raises them
    "registry",    # name -> entry tables; needs only errors
    "config",      # RunConfig and the fixed option lists: plain data, checked without I/O
    "common",      # atomic files, locks, progress, CPU facts: shared mechanisms, no model
    "models",      # the network specs: pure description, no files, no Paddle
    "modelio",     # model directories on disk: reads specs to name parameter files
    "inputs",      # from --data to crops: reads recipes (models) and model files' facts
    "introspect",  # the spec drawn and listed for people
    "importers",   # foreign checkpoints into model directories (models, modelio)
    "hub",         # pretrained weights by name: download, verify, convert with importers
    "outputs",     # formats, journal, parts: where features go (safe pickles of modelio)
    "runtime",     # Paddle: engines from specs and model directories
    "runners",     # inputs -> runtime engines -> outputs, locally or on Ray
    "jobs",        # one module per --job, composing every room below
    "api",         # resnet/__init__.py: the Python API over the jobs
    "cli",         # the flags over the jobs (and the package's version)
    "main",        # resnet/__main__.py: python -m resnet
)
#: top-level modules that are rooms of their own
_TOP = {"__init__": "api", "__main__": "main", "cli": "cli", "config": "config",
        "errors": "errors", "registry": "registry"}

#: import cycles allowed, each as a frozenset of module names: none. (A registry is defined
#: in a module of its own, models/archs.py, outputs/formats.py, that its entries import, so
#: no package __init__ is imported by its own modules.)
KNOWN_CYCLES = ()


def _modules() -> dict[str, str]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def room(module: str) -> str:
    parts = module.split(".")
    if module == "resnet":
        return "api"
    if len(parts) == 2 and parts[1] in _TOP:
        return _TOP[parts[1]]
    return parts[1]


def _imports(module: str, path: str) -> set[str]:
    """The package's modules that `module` imports anywhere in its file: `from a.b import c`
    counts as a.b.c where that is a module, else as a.b (a name defined there)."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in MODULES else base)
    return {t for t in targets if t in MODULES and t != module}


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _cycles(graph: dict) -> list[frozenset]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = set()
            while True:
                w = stack.pop()
                on.discard(w)
                part.add(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(frozenset(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    """The reader sees what is there: a known static, a relative-free function-level and a
    `from package import module` import."""
    assert "resnet.errors" in GRAPH["resnet.config"]
    assert "resnet.runners.local" in GRAPH["resnet.runners.ray_data"]  # inside a method
    assert "resnet.inputs.remote" in GRAPH["resnet.inputs.lists"]  # from resnet.inputs import
    assert set(room(m) for m in MODULES) == set(ORDER)


def test_no_import_cycle():
    cycles = set(_cycles(GRAPH))
    new = [sorted(c) for c in cycles - set(KNOWN_CYCLES)]
    assert not new, f"import cycles: {new}"
    gone = [sorted(c) for c in set(KNOWN_CYCLES) - cycles]
    assert not gone, f"fixed, remove from KNOWN_CYCLES: {gone}"


def test_the_cycles_fixed_here_stay_fixed():
    assert "resnet.inputs.imaging" not in GRAPH["resnet.inputs.remote"]
    assert not {"resnet.models.graph", "resnet.models"} & GRAPH["resnet.models.ops"]
    assert "resnet.models.ops" in GRAPH["resnet.models.graph"]


def test_no_import_up_the_order():
    rank = {name: i for i, name in enumerate(ORDER)}
    upward = sorted(f"{m} ({room(m)}) imports {t} ({room(t)})"
                    for m, targets in GRAPH.items() for t in targets
                    if rank[room(t)] > rank[room(m)])
    assert not upward, "\n".join(upward)


def test_the_order_is_the_documented_one():
    import resnet

    assert " < ".join(ORDER) in " ".join(resnet.__doc__.split())


def test_run_config_is_built_without_opencv_or_paddle():
    code = ("import resnet.config; from resnet.config import RunConfig; "
            "RunConfig(job='extract', format='hdf5', runner='local'); import sys; "
            "assert 'cv2' not in sys.modules and 'paddle' not in sys.modules, "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('cv2', 'paddle'))[:3]")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert r.returncode == 0, r.stderr


def test_registry_names_are_cheap():
    """The CLI's choices of --format and --runner come without OpenCV or Paddle."""
    code = ("from resnet.outputs import FORMATS; from resnet.runners import RUNNERS; "
            "FORMATS.names(); RUNNERS.names(); import sys; "
            "assert 'cv2' not in sys.modules and 'paddle' not in sys.modules")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT), timeout=120)
    assert r.returncode == 0, r.stderr


def _environ_writes(path: str) -> list[int]:
    """Lines that change os.environ: item assignment or deletion, update / setdefault /
    pop, os.putenv."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)

    def environ(node) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    lines = []
    for node in ast.walk(tree):
        targets = (node.targets if isinstance(node, (ast.Assign, ast.Delete))
                   else [node.target] if isinstance(node, ast.AugAssign) else [])
        if any(isinstance(t, ast.Subscript) and environ(t.value) for t in targets):
            lines.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                (environ(node.func.value) and node.func.attr in ("update", "setdefault", "pop"))
                or node.func.attr == "putenv"):
            lines.append(node.lineno)
    return lines


def test_no_setting_is_passed_through_the_environment():
    """Settings travel as arguments: the package writes os.environ only for the process-start
    settings of the libraries it loads (OpenCV's pixel cap and temporary folder, Paddle's log
    level, TF32 and oneDNN's math mode) and, in a Ray worker, the driver's user environment (RESNET_*, AWS_*)
    and the engine cache it can reach."""
    allowed = {"resnet.inputs.imaging", "resnet.runtime.paddle_env", "resnet.runtime.engine",
               "resnet.runners.ray_data"}
    writers = {m for m, path in MODULES.items() if _environ_writes(path)}
    assert "resnet.inputs.imaging" in writers  # the reader finds what is there
    assert writers <= allowed, sorted(writers - allowed)
    # OpenCV's pixel cap, and its temporary folder set and put back around one decode
    assert len(_environ_writes(MODULES["resnet.inputs.imaging"])) == 4
