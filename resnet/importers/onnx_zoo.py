"""The ONNX model zoo's ResNets (`resnet{18,34,50,101,152}-v1-7.onnx` and `-v2-7.onnx`),
converted from MXNet Gluon: v1 is v1 strides, max pool pad 1 (the `v1-pad1` variant) with
biases on the 1x1 body convs; v2 is the pre-activation network (`v2`); both RGB /255
mean/std.

Only the initializers are read (the `onnx` package, no graph is run). Their names are
Gluon's under an instance prefix (`resnetv17_stage1_conv0_weight`), stripped here; each conv
bias is folded into the batch norm that follows it (BN(conv + b) is BN(conv) with its running
mean moved by b), so the weights are exactly a v1-pad1 network. Anything else (another
graph) fits neither and is refused with its first mismatching names.
"""
from __future__ import annotations

from resnet.errors import ResnetError
from resnet.importers import IMPORTERS
from resnet.importers._gluon import PREFIX, dotted, fold_conv_biases


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
            state[dotted(PREFIX.sub("", tensor.name))] = numpy_helper.to_array(tensor)
        if not state:
            raise ResnetError(f"{path}: an ONNX model without weights (initializers)")
        return fold_conv_biases(state, path)
