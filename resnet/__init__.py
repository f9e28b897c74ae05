"""resnet: v1 model-zoo ResNet features and predictions on PaddlePaddle.

The Python API: `build(layer_num)` gives the network spec, `load(model_dir, layer_num)` a
ready network whose `run(batch, outputs=[...])` returns named layer outputs, and
`load_features(path)` reads an extract run's output back. `to_dot(spec)`, `render(spec, path)`,
`layer_table(spec)` and `param_counts(spec)` draw and list the network (resnet.introspect).
"""
from .errors import ResnetError
from .introspect import layer_table, param_counts, render, to_dot
from .sinks import Features, load_features
from .spec import build

__version__ = "0.1.0"
__all__ = ["build", "load", "load_features", "Features", "ResnetError", "__version__",
           "to_dot", "render", "layer_table", "param_counts"]


def load(model_dir: str, layer_num: int = 50):
    """A ready Network (Paddle) with the v1 parameters of `model_dir` loaded and validated."""
    from .network import load as _load

    return _load(model_dir, layer_num)
