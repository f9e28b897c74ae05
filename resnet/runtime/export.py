"""`--job=export`: a model directory as a deployable Paddle inference model or ONNX file.

The exported graph takes `image` (N, 3, 224, 224), already preprocessed, and returns the
--output_layer layers in that order (ONNX outputs carry the layer names). A sidecar
`<stem>.resnet.json` (x.onnx -> x.resnet.json, PREFIX -> PREFIX.resnet.json) records the
layers, shapes and the preprocessing recipe to feed it.

Paddle inference: legacy `.pdmodel` + `.pdiparams`, exported in a child process started with
FLAGS_enable_pir_api=0 (faster under Paddle Inference than PIR, docs/engine_notes.md, and
loadable by Paddle 2.x too). ONNX: paddle2onnx on a PIR export, without its polygraphy step (that
pip-installs packages at run time, docs/engine_notes.md).
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys

from resnet.modelio import modelinfo
from resnet.runtime import static
from resnet.common.files import atomic_path, private_dir
from resnet.errors import ResnetError
from resnet.modelio.mean import DEFAULT_BGR
from resnet.models.graph import Spec

log = logging.getLogger("resnet")
ONNX_OPSET = 13
EXPORT_HELP = ('pip install -e ".[export]" in this repository (or: pip install onnx '
               'onnxruntime paddle2onnx)')


def _save(spec: Spec, values: dict, layers: list[str], prefix: str) -> None:
    from resnet.runtime.network import Network

    static.save(Network(spec).load_params(values), layers, prefix)


def paddle_inference(model_dir: str, spec: Spec, layers: list[str], prefix: str) -> list[str]:
    """PREFIX.pdmodel and PREFIX.pdiparams (legacy program), written atomically."""
    folder = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(folder, exist_ok=True)
    with private_dir(folder) as tmp:  # renamed over the targets: a link there is replaced
        static.export(model_dir, spec.arch, layers, os.path.join(tmp, "model"))
        written = []
        for ext in (".pdmodel", ".pdiparams"):
            os.replace(os.path.join(tmp, "model" + ext), prefix + ext)
            written.append(prefix + ext)
        return written


def onnx_file(values: dict, spec: Spec, layers: list[str], path: str) -> list[str]:
    """An ONNX model with input `image` and one output per layer, named after it."""
    from resnet.runtime.paddle_env import paddle  # noqa: F401  (first: quiet import, log level set)

    try:
        import onnx
        import paddle2onnx
    except ImportError as e:
        raise ResnetError(f"--to=onnx needs {e.name}: {EXPORT_HELP}") from None
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with private_dir(folder) as tmp:
        _save(spec, values, layers, os.path.join(tmp, "model"))
        program = next(os.path.join(tmp, n) for n in ("model.json", "model.pdmodel")
                       if os.path.exists(os.path.join(tmp, n)))
        try:  # save_file=None: the converted bytes, no optimizer that installs packages
            with _quiet_stdout():  # its C++ progress lines
                raw = paddle2onnx.export(program, os.path.join(tmp, "model.pdiparams"), None,
                                         opset_version=ONNX_OPSET, enable_onnx_checker=True)
        except Exception as e:  # paddle2onnx logs the cause and fails on its own variable
            raise ResnetError(f"paddle2onnx could not convert the model ({type(e).__name__}: "
                              f"{e})") from None
        model = onnx.load_from_string(raw)
        _name_outputs(model, layers)
        model = _tidy(model)
        onnx.checker.check_model(model)
        with atomic_path(path) as target:
            onnx.save(model, target)
        return [path]


@contextlib.contextmanager
def _quiet_stdout():
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _name_outputs(model, layers: list[str]) -> None:
    """Rename paddle2onnx's fetch_name_K outputs to the layer names, everywhere they appear."""
    renames = {out.name: layer for out, layer in zip(model.graph.output, layers)}
    for node in model.graph.node:
        node.output[:] = [renames.get(n, n) for n in node.output]
        node.input[:] = [renames.get(n, n) for n in node.input]
    for out in model.graph.output:
        out.name = renames.get(out.name, out.name)


def _tidy(model):
    """Drop the nodes no output needs and the initializers no node reads, which paddle2onnx
    leaves behind (onnxruntime warns about them). Done on the graph in place: onnxoptimizer's
    passes do the same but copy the whole model through bytes twice (docs/engine_notes.md)."""
    graph = model.graph
    needed = {out.name for out in graph.output}
    kept = []
    for node in reversed(graph.node):  # topologically sorted: readers after writers
        if any(name in needed for name in node.output):
            kept.append(node)
            needed.update(_reads(node))
    if len(kept) < len(graph.node):
        kept.reverse()
        del graph.node[:]
        graph.node.extend(kept)
    unused = {t.name for t in graph.initializer} - needed
    if unused:
        tensors = [t for t in graph.initializer if t.name not in unused]
        inputs = [i for i in graph.input if i.name not in unused]
        del graph.initializer[:]
        graph.initializer.extend(tensors)
        del graph.input[:]
        graph.input.extend(inputs)
    return model


def _reads(node) -> set[str]:
    """The names `node` reads, with those read inside its subgraphs (If / Loop bodies)."""
    names = {name for name in node.input if name}
    for attr in node.attribute:
        for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
            for inner in sub.node:
                names |= _reads(inner)
    return names


def sidecar(path: str, spec: Spec, layers: list[str], info, target: str) -> str:
    """`<stem>.resnet.json`: inputs, outputs and the preprocessing the exported model expects."""
    recipe = info.preprocessing if info and info.preprocessing else None
    doc = {
        "target": target, "arch": spec.arch, "layer_num": spec.layer_num,
        "variant": spec.variant,
        "input": {"name": "image", "shape": [-1, *spec["input"].shape], "dtype": "float32"},
        "outputs": [{"name": n, "shape": [-1, *spec[n].shape]} for n in layers],
        "preprocessing": recipe.to_json() if recipe else "v1: BGR, CHW, minus the mean "
                         f"(default {', '.join(map(str, DEFAULT_BGR))}), resize to "
                         f"{spec.input_size}x{spec.input_size}",
        "classes": info.classes if info else "imagenet",
    }
    return modelinfo.dump(doc, path)
