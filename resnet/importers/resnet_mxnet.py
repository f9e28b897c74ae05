"""ResNet's key names in files made by MXNet: Gluon's (v1 and v2, prefix-stripped as in the
ONNX zoo's files, or structural as `save_parameters` writes them) and the symbolic
checkpoints (`stage{s}_unit{u}_...`, the MXNet tutorial's pre-activation ResNets). Gluon
names count convs and batch norms per stage in the order Gluon creates them.
"""
from resnet.importers._gluon import BN_NAMES
from resnet.importers._resnet import ResNetStyle
from resnet.importers.base import add_styles
from resnet.modelio.modelinfo import Recipe


def _gluon_block(basic):
    """MXNet Gluon v1 names, prefix stripped (as in the ONNX zoo's v1 files): each stage
    counts its convs and batch norms in creation order, a block's body first, then its
    downsample (the first block of a stage whose shape changes: all but basic stage 2)."""
    body = {"2a": 0, "2b": 1, "2c": 2}

    def block(stage, j, _, branch, kind):
        per = 2 if basic else 3
        first = per + (0 if basic and stage == 2 else 1)
        k = per if branch == "1" else body[branch] + (0 if j == 1 else first + per * (j - 2))
        return f"stage{stage - 1}_{'batchnorm' if kind == 'bn' else 'conv'}{k}"
    return block


def _gluon_v2_block(basic):
    """MXNet Gluon v2 names, prefix stripped (the ONNX zoo's v2 files): per stage, each block
    creates bn1, conv1, bn2, conv2[, bn3, conv3], then its downsample conv."""
    def block(stage, j, _, branch, kind):
        per = 2 if basic else 3
        if kind == "bn":
            return f"stage{stage - 1}_batchnorm{per * (j - 1) + _V2_BN[branch]}"
        first = per + (0 if basic and stage == 2 else 1)
        k = per if branch == "1" else _V2_CONV[branch] + (0 if j == 1 else first + per * (j - 2))
        return f"stage{stage - 1}_conv{k}"
    return block


_V2_BN = {"preact": 0, "2a": 1, "2b": 2}
_V2_CONV = {"2a": 0, "2b": 1, "2c": 2}
def _structural_block(version):
    """Gluon's attribute paths (`save_parameters` files), the same for basic blocks and
    bottlenecks: stage s is features.<3 + s> in v1 (conv, BN, ReLU, pool before it) and
    features.<4 + s> in v2 (input BN first); v1 blocks hold `body` (conv, BN, ReLU, ...) and
    `downsample` (conv, BN), v2 blocks bn1, conv1, bn2, ... and a `downsample` conv."""
    def block(stage, j, _, branch, kind):
        where = f"features.{stage + (2 if version == 1 else 3)}.{j - 1}"
        if version == 1:
            if branch == "1":
                return f"{where}.downsample.{int(kind == 'bn')}"
            return f"{where}.body.{_V1_BODY[branch] + (kind == 'bn')}"
        if branch == "1":
            return f"{where}.downsample"
        if kind == "bn":
            return f"{where}.bn{_V2_BN[branch] + 1}"
        return f"{where}.conv{_V2_CONV[branch] + 1}"
    return block


_V1_BODY = {"2a": 0, "2b": 3, "2c": 6}

_STEM_V1 = {"conv": "conv0", "bn": "batchnorm0"}
_STEM_V2 = {"conv": "conv0", "bn": "batchnorm1"}
_V2_EXTRA = {"input_bn": "batchnorm0", "final_bn": "batchnorm2"}
_GLUON = {
    # MXNet Gluon v1 (and the ONNX zoo's v1 files made from it), prefix stripped, with the
    # importer's conv biases already folded into the batch norms
    "gluon": ResNetStyle("gluon", _STEM_V1, _gluon_block(False), BN_NAMES, True, fc="dense0"),
    "gluon (basic blocks)": ResNetStyle("gluon", _STEM_V1, _gluon_block(True), BN_NAMES, True,
                                        fc="dense0"),
    # MXNet Gluon v2 (and the ONNX zoo's v2 files): the pre-activation network
    "gluon v2": ResNetStyle("gluon v2", _STEM_V2, _gluon_v2_block(False), BN_NAMES, True,
                            fc="dense0", extra=_V2_EXTRA, variants=("v2",)),
    "gluon v2 (basic blocks)": ResNetStyle("gluon v2", _STEM_V2, _gluon_v2_block(True),
                                           BN_NAMES, True, fc="dense0", extra=_V2_EXTRA,
                                           variants=("v2",)),
    # Gluon's structural names (save_parameters), v1 and v2
    "gluon structural": ResNetStyle("gluon structural",
                                    {"conv": "features.0", "bn": "features.1"},
                                    _structural_block(1), BN_NAMES, True, fc="output"),
    "gluon v2 structural": ResNetStyle("gluon v2 structural",
                                       {"conv": "features.1", "bn": "features.2"},
                                       _structural_block(2), BN_NAMES, True, fc="output",
                                       extra={"input_bn": "features.0",
                                              "final_bn": "features.9"},
                                       variants=("v2",)),
}


def _symbolic_block(stage, j, _, branch, kind):
    """MXNet's symbolic pre-activation units: stage{s}_unit{u}_{bn1,conv1,bn2,...,sc}."""
    part = ("sc" if branch == "1" else
            {"preact": "bn1", "2a": "bn2", "2b": "bn3"}[branch] if kind == "bn" else
            {"2a": "conv1", "2b": "conv2", "2c": "conv3"}[branch])
    return f"stage{stage - 1}_unit{j}_{part}"


SYMBOLIC = ResNetStyle(  # arg:/aux: prefixes dropped by the importer
    "mxnet symbolic", {"conv": "conv0", "bn": "bn0"}, _symbolic_block, BN_NAMES, True,
    fc="fc1", extra={"input_bn": "bn_data", "final_bn": "bn1"}, variants=("v2",),
    recipe=Recipe("RGB", 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 256))  # bn_data normalizes


#: the ONNX zoo's ResNets are Gluon's v1 and v2 (prefixed names); a .params file may also
#: hold the structural names or a symbolic checkpoint
_PREFIXED = ("gluon", "gluon (basic blocks)", "gluon v2", "gluon v2 (basic blocks)")
add_styles({**_GLUON, "mxnet symbolic": SYMBOLIC}, "mxnet")
add_styles({k: _GLUON[k] for k in _PREFIXED}, "onnx")
