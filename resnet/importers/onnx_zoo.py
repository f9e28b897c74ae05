"""The ONNX model zoo's ResNets (`resnet{18,34,50,101,152}-v1-7.onnx` and `-v2-7.onnx`),
converted from MXNet Gluon: v1 is v1 strides, max pool pad 1 (the `v1-pad1` variant) with
biases on the 1x1 body convs; v2 is the pre-activation network (`v2`); both RGB /255
mean/std.

Only the initializers are read (the `onnx` package, no graph is run). Their names are
Gluon's under an instance prefix (`resnetv17_stage1_conv0_weight`), stripped here; each conv
bias is folded into the batch norm that follows it (BN(conv + b) is BN(conv) with its running
mean moved by b), so the weights are exactly a v1-pad1 network. Anything else (another graph) fits neither
and is refused with its first mismatching names.
"""
from __future__ import annotations

import re

import numpy as np

from resnet.errors import ResnetError
from resnet.importers import IMPORTERS

_PREFIX = re.compile(r"^resnetv\d+_")
_LEAVES = ("running_mean", "running_var", "weight", "bias", "gamma", "beta")
_CONV_BIAS = re.compile(r"^(.*)conv(\d+)\.bias$")


def _dotted(name: str) -> str:
    """stage1_conv0_weight -> stage1_conv0.weight (the leaf after a dot, as the styles say)."""
    for leaf in _LEAVES:
        if name.endswith("_" + leaf):
            return f"{name[:-len(leaf) - 1]}.{leaf}"
    return name


def fold_conv_biases(state: dict, path: str) -> dict:
    """Each `<scope>conv<k>.bias` folded into `<scope>batchnorm<k>.running_mean`."""
    out = dict(state)
    for key in [k for k in state if _CONV_BIAS.match(k)]:
        scope, k = _CONV_BIAS.match(key).groups()
        mean = f"{scope}batchnorm{k}.running_mean"
        if mean not in out or np.shape(out[mean]) != np.shape(state[key]):
            raise ResnetError(f"{path}: {key} has no batch norm after it to fold it into")
        out[mean] = (np.asarray(out[mean], np.float32)
                     - np.asarray(out.pop(key), np.float32)).astype(np.float32)
    return out


@IMPORTERS.register("onnx")
class OnnxZooImporter:
    styles = ("gluon", "gluon (basic blocks)", "gluon v2", "gluon v2 (basic blocks)")
    suffixes = (".onnx",)
    variants = ("v1-pad1", "v2")

    @staticmethod
    def looks_like(head: bytes) -> bool:
        # ModelProto: ir_version (field 1, varint) then producer_name (field 2) or opset
        return len(head) > 2 and head[0] == 0x08 and head[2] in (0x12, 0x1A, 0x22, 0x3A, 0x42)

    @staticmethod
    def read(path: str) -> dict:
        try:
            import onnx
            from onnx import numpy_helper
        except ImportError:
            raise ResnetError("--from=onnx needs the onnx package: pip install onnx (or "
                              "pip install -e '.[export]')") from None
        try:
            model = onnx.load(path, load_external_data=False)
        except Exception as e:  # DecodeError and friends: the file is not an ONNX model
            raise ResnetError(f"{path}: not an ONNX model ({type(e).__name__})") from None
        state = {}
        for tensor in model.graph.initializer:
            state[_dotted(_PREFIX.sub("", tensor.name))] = numpy_helper.to_array(tensor)
        if not state:
            raise ResnetError(f"{path}: an ONNX model without weights (initializers)")
        return fold_conv_biases(state, path)
