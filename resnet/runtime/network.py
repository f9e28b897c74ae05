"""The Paddle executor: runs the spec's nodes in order and returns exactly the requested layers.

It computes only the ancestors of what was asked for, stops after the last of them, and drops
each intermediate once its last consumer has run, so memory stays at the live frontier.
"""
from __future__ import annotations

import numpy as np

from resnet.modelio import params as params_io
from resnet.runtime.paddle_env import paddle
from resnet.models.graph import Spec


class Network(paddle.nn.Layer):
    """A network built from a Spec, holding one Paddle sublayer per node with parameters,
    all zero until load_params sets them."""

    def __init__(self, spec: Spec):
        super().__init__()
        self.spec = spec
        self.layers = paddle.nn.LayerDict()
        # every parameter is then set by load_params: zeros spare drawing Paddle's random
        # defaults (Xavier for fc layers) for every value of a large network; a caller's
        # own global initializers are put back after
        before = [getattr(paddle.base.initializer, f"_global_{kind}_initializer",
                          lambda: None)() for kind in ("weight", "bias")]
        zero = paddle.nn.initializer.Constant(0.0)
        paddle.nn.initializer.set_global_initializer(zero, zero)
        try:
            for node in spec:
                layer = node.operation.make_layer(node, paddle)
                if layer is not None:
                    self.layers[node.name] = layer
        finally:
            paddle.nn.initializer.set_global_initializer(*before)
        self.eval()

    def load_params(self, values: dict[str, np.ndarray]) -> "Network":
        """Copy v1 parameter arrays (keyed by file name) into the sublayers."""
        for node in self.spec:
            if node.name not in self.layers:
                continue
            node.operation.load(node, self.layers[node.name],
                                lambda suffix, n=node.name: values[f"_{n}.{suffix}"])
        return self

    @paddle.jit.not_to_static  # plain Python over the spec, also when compiled (engine.py)
    def plan(self, outputs) -> list:
        """The nodes needed for `outputs`, in order, each with the names it can free after it."""
        order = self.spec.needed(outputs)
        last_use = {}
        for i, node in enumerate(order):
            for src in node.inputs:
                last_use[src] = i
        keep = set(outputs)
        frees = [[] for _ in order]
        for src, i in last_use.items():
            if src not in keep:
                frees[i].append(src)
        return list(zip(order, frees))

    def forward(self, x, outputs=("output",), pool: str = "none"):
        """Paddle tensors of the requested layers, keyed by name, for a (N, 3, S, S) batch.

        `pool` avg / max turns each (C, H, W) layer into (C,) inside the graph (global average
        or max over H and W), so a compiled engine hands back only C values per layer.
        """
        outputs = self.spec.check_layers(list(outputs))
        values = {}
        for node, frees in self.plan(outputs):
            args = [values[src] for src in node.inputs] if node.inputs else [x]
            y = self._apply(node, args)
            values[node.name] = y
            for src in frees:
                del values[src]
        return {name: self._pooled(name, values[name], pool) for name in outputs}

    @paddle.jit.not_to_static
    def _pooled(self, name, y, pool):
        if pool == "none" or len(self.spec[name].shape) != 3:
            return y
        F = paddle.nn.functional  # adaptive pools: supported by every program format
        pooled = F.adaptive_avg_pool2d(y, 1) if pool == "avg" else F.adaptive_max_pool2d(y, 1)
        return paddle.flatten(pooled, 1)

    @paddle.jit.not_to_static
    def _apply(self, node, args):
        layer = self.layers[node.name] if node.name in self.layers else None
        return node.operation.apply(node, layer, args, paddle)

    def run(self, batch: np.ndarray, outputs=("output",), pool: str = "none"
            ) -> dict[str, np.ndarray]:
        """Numpy in, numpy out: float32 arrays shaped (N, *layer shape) (pooled: (N, C))."""
        with paddle.no_grad():
            result = self.forward(paddle.to_tensor(np.ascontiguousarray(batch, np.float32)),
                                  outputs, pool)
            return {k: v.numpy() for k, v in result.items()}


def load(model_dir: str, layer_num: int | None = None, variant: str | None = None,
         arch: str | None = None) -> Network:
    """A ready Network with the parameter files of `model_dir` loaded and validated.

    Architecture: `arch`, or a ResNet's depth and variant, as given; else the directory's
    model.json; else what its parameter files show (a v1 zoo directory).
    """
    from types import SimpleNamespace

    from resnet.modelio.modelinfo import resolve

    spec, _ = resolve(SimpleNamespace(model=model_dir, layer_num=layer_num, variant=variant,
                                      arch=arch))
    return Network(spec).load_params(params_io.load_model(model_dir, spec))
