"""What the readers of files made by MXNet Gluon share: the ONNX zoo's (onnx_zoo.py) and
Gluon's own .params (mxnet.py). An instance prefix (`resnetv17_`, or a VGG's `vgg0_`) is
dropped, leaves get a dot (`stage1_conv0.weight`), and 1x1 conv biases (Gluon v1 ResNets)
are folded into the batch norms that follow them; a VGG's conv biases stay (its convs carry
them in the spec). The names themselves are the families' files: resnet_mxnet.py,
vgg_gluon.py.
"""
from __future__ import annotations

import re

from resnet.importers import base

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


#: batch norm leaves of Gluon (and of MXNet's symbolic nets, once moving_ is running_)
BN_NAMES = {"w0": "gamma", "wbias": "beta", "w1": "running_mean", "w2": "running_var"}
