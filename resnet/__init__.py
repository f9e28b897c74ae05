"""resnet: named-layer features and predictions of the classic ImageNet CNNs on PaddlePaddle
(ResNet exact to the v1 model zoo, its v1.5/v1-pad1/v2 variants, VGG-16/19 with and
without batch norm).

The Python API does what the CLI does:

- `extract(model, data, layers=None, output_dir="output", **options)` and
  `predict(model, data, **options)` run a job and return a Summary (counts, failures, output
  files, img/s; predict also its predictions); options are the CLI's flag names.
- `load_features(path)` reads an extract run's output back.
- `build_arch(name)` gives the network spec of a registered architecture (`build(layer_num,
  variant)`: a ResNet by its v1 spellings), `list_models()` every name with its input size,
  parameters and default features, `load(model_dir)` a ready Paddle network whose
  `run(batch, outputs=[...])` returns named layer outputs; `to_dot`, `render`,
  `layer_table`, `param_counts` draw and list a spec.
- `list_pretrained()` lists the pretrained-weights names `model=` takes (publisher, license,
  accuracy, cached or not); `download(name)` fetches, checks and converts one into the
  weights cache and returns its folder.

Importing the package is light: Paddle, h5py and graphviz load only when used.

Layering: each folder is a room, and a room imports only rooms before it in this order
(tests/test_layering.py checks every import, function-level ones included, and that no
two modules import each other): errors < registry < config < common < models < modelio <
inputs < introspect < importers < hub < outputs < runtime < runners < jobs < api < cli <
main.
Why each sits where it does: errors and registry need nothing; config is plain data (the
settings and their fixed option lists); common holds mechanisms with no model in them;
models describe the networks without files; modelio reads them from disk; inputs turn
--data into crops by a model's recipe; introspect and importers read specs and model
directories; hub turns a pretrained-weights name into a model folder (download, verify,
convert with an importer); outputs write features; runtime (Paddle) builds engines;
runners join inputs, engines and outputs; jobs compose runners; this API and the CLI (which
reads the version here) sit on the jobs; main is `python -m resnet`. Settings travel as arguments, never
through os.environ (the environment is read only for what a user sets there).
"""
from resnet.errors import ResnetError
from resnet.introspect.diagram import render, to_dot
from resnet.introspect.table import layer_table, param_counts
from resnet.models import build, build_arch, list_models
from resnet.outputs import load_features
from resnet.outputs.base import Features

__version__ = "0.1.0"
__all__ = ["extract", "predict", "build", "build_arch", "load", "load_features", "list_models",
           "list_pretrained", "download", "Features",
           "ResnetError", "__version__", "to_dot", "render", "layer_table", "param_counts"]


def load(model_dir: str, layer_num: int | None = None, variant: str | None = None,
         arch: str | None = None):
    """A ready Network (Paddle) with the parameters of `model_dir` loaded and validated.

    The architecture defaults to the directory's model.json, else what its parameter files
    show (v1 zoo directories, VGG folders). `model_dir` may name pretrained weights
    (`resnet50.tv_in1k`): their folder in the weights cache, installed first if needed.
    """
    from resnet.hub.install import resolve
    from resnet.runtime.network import load as _load

    return _load(resolve(model_dir), layer_num, variant, arch)


def list_pretrained() -> list[dict]:
    """Every registered pretrained-weights entry: name, arch, format, publisher, license,
    top1/top5 (percent, None where unpublished) and whether the weights cache holds it."""
    from resnet.hub import WEIGHTS, install

    return [{"name": name, "arch": w.arch, "format": w.source_format, "publisher": w.publisher,
             "license": w.license, "top1": w.top1, "top5": w.top5,
             "cached": install.installed(name)} for name, w in WEIGHTS.items()]


def download(name: str, weights_file: str | None = None) -> str:
    """Fetch, check and convert pretrained weights `name` into the weights cache (once);
    returns the model folder. `weights_file`: the entry's file, fetched by hand."""
    from resnet.hub import install

    return install.ensure(name, weights_file)


def _run(job: str, **options):
    import logging

    from resnet.config import RunConfig
    from resnet.jobs import JOBS, foreign, missing, readers

    if not logging.getLogger().handlers and not logging.getLogger("resnet").handlers:
        logging.basicConfig(level=logging.INFO, format="resnet: %(message)s")
    run = JOBS[job]
    for name in foreign(run, [k for k in options if k in RunConfig.names()]):
        others = readers(name)  # as the CLI: an option the job would ignore is an error
        raise ResnetError(f"resnet.{job}() does not take {name}=..."
                          + (f"; it is an option of --job={'/'.join(others)}" if others else ""))
    config = RunConfig.from_options(job, **options)
    flag = missing(run, config)
    if flag:
        raise ResnetError(f"resnet.{job}() needs {flag}=...")
    return config, run


def extract(model: str, data: str, layers=None, output_dir: str = "output", **options):
    """Write the features of `layers` (default: the last block's conv and bn) for every image
    of `data` (a list file, a folder or an image) to `output_dir`; returns a Summary.

    `options` are the CLI's flags by name: format="text", batch_size=32, resume=True, ...
    Errors raise ResnetError (one line, as the CLI prints them).
    """
    config, run = _run("extract", model=model, data=data, output_layer=layers,
                       output_dir=output_dir, **options)
    return run(config)


def predict(model: str, data: str, top_k: int = 5, **options):
    """Top-k classes for every image of `data`; returns a Summary whose `predictions` holds
    (path, [(class index, probability), ...]) per image, in list order."""
    config, run = _run("predict", model=model, data=data, top_k=top_k, **options)
    return run(config, collect=True)
