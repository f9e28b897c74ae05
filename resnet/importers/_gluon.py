"""MXNet Gluon's ResNet names, shared by the importers of the files made from it: the ONNX
zoo's (onnx_zoo.py) and Gluon's own .params (mxnet.py). Names count convs and batch norms
per stage in the order Gluon creates them; an instance prefix (`resnetv17_`, or a VGG's
`vgg0_`) is dropped and 1x1 conv biases (Gluon v1) are folded into the batch norms that
follow them. A VGG's conv biases stay: its convs carry them in the spec (vgg_gluon.py).
"""
from __future__ import annotations

import re

from resnet.importers import base
from resnet.importers.base import STYLES, Style

#: Gluon's instance prefix: the class name and a per-process counter
PREFIX = re.compile(r"^(resnetv\d+|vgg\d+)_")
_LEAVES = ("running_mean", "running_var", "weight", "bias", "gamma", "beta")
_CONV_BIAS = re.compile(r"^(.*)conv(\d+)\.bias$")
_BODY_BIAS = re.compile(r"^(.*\.body\.)(\d+)\.bias$")  # structural: the BN is the next child


def dotted(name: str) -> str:
    """stage1_conv0_weight -> stage1_conv0.weight (the leaf after a dot, as the styles say)."""
    for leaf in _LEAVES:
        if name.endswith("_" + leaf):
            return f"{name[:-len(leaf) - 1]}.{leaf}"
    return name


def _bn_mean_after(key: str) -> str | None:
    """The running mean of the batch norm after a biased conv: `<scope>conv<k>.bias` ->
    `<scope>batchnorm<k>`; structurally `features.4.0.body.<k>.bias` -> `body.<k+1>`."""
    if m := _CONV_BIAS.match(key):
        return f"{m[1]}batchnorm{m[2]}.running_mean"
    if m := _BODY_BIAS.match(key):
        return f"{m[1]}{int(m[2]) + 1}.running_mean"
    return None


def is_vgg(state: dict) -> bool:
    """Gluon's VGG (prefix dropped): three Dense layers (fc6, fc7, fc8) where a ResNet has one;
    its `conv<k>.bias` is a conv bias the spec keeps, even before `batchnorm<k>`."""
    return "dense2.weight" in state


def fold_conv_biases(state: dict, path: str) -> dict:
    """Gluon v1's 1x1 conv biases folded into the batch norms after them (a VGG's stay)."""
    if is_vgg(state):
        return state
    return base.fold_conv_biases(state, path, _bn_mean_after)


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
#: batch norm leaves of Gluon (and of MXNet's symbolic nets, once moving_ is running_)
BN_NAMES = {"w0": "gamma", "wbias": "beta", "w1": "running_mean", "w2": "running_var"}

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

STYLES.update({
    # MXNet Gluon v1 (and the ONNX zoo's v1 files made from it), prefix stripped, with the
    # importer's conv biases already folded into the batch norms
    "gluon": Style("gluon", {"conv": "conv0", "bn": "batchnorm0"}, _gluon_block(False),
                   BN_NAMES, True, fc="dense0"),
    "gluon (basic blocks)": Style("gluon", {"conv": "conv0", "bn": "batchnorm0"},
                                  _gluon_block(True), BN_NAMES, True, fc="dense0"),
    # MXNet Gluon v2 (and the ONNX zoo's v2 files): the pre-activation network
    "gluon v2": Style("gluon v2", {"conv": "conv0", "bn": "batchnorm1"}, _gluon_v2_block(False),
                      BN_NAMES, True, fc="dense0",
                      extra={"input_bn": "batchnorm0", "final_bn": "batchnorm2"},
                      variants=("v2",)),
    "gluon v2 (basic blocks)": Style("gluon v2", {"conv": "conv0", "bn": "batchnorm1"},
                                     _gluon_v2_block(True), BN_NAMES, True, fc="dense0",
                                     extra={"input_bn": "batchnorm0", "final_bn": "batchnorm2"},
                                     variants=("v2",)),
    # Gluon's structural names (save_parameters), v1 and v2
    "gluon structural": Style("gluon structural", {"conv": "features.0", "bn": "features.1"},
                              _structural_block(1), BN_NAMES, True, fc="output"),
    "gluon v2 structural": Style("gluon v2 structural",
                                 {"conv": "features.1", "bn": "features.2"},
                                 _structural_block(2), BN_NAMES, True, fc="output",
                                 extra={"input_bn": "features.0", "final_bn": "features.9"},
                                 variants=("v2",)),
})
