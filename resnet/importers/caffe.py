"""The original Caffe ResNets (`ResNet-50-model.caffemodel`, ...): the weights the v1 zoo was
converted from, so they convert to an exact v1 model directory. Also the VGG team's
`VGG_ILSVRC_16_layers` / `VGG_ILSVRC_19_layers` (names in vgg_caffe.py).

The NetParameter is read with the protobuf wire reader (no Caffe, no size cap), in the
current layer format or the older V1 one (`layers`, types as numbers) the VGG files were
saved in. Each ResNet conv is Convolution -> BatchNorm -> Scale in Caffe: the BatchNorm's
statistics are divided by its scale factor (blob 2), the Scale layer's gamma and beta join
them, a conv bias (ResNet-50's conv1) is folded into the following BatchNorm's mean, and a
BatchNorm eps other than v1's 1e-5 is folded into the variance, all exactly. A conv bias with
no BatchNorm after it (VGG's) is kept as the conv's bias. The fc weight is transposed by the
mapping.
"""
from __future__ import annotations

import numpy as np

from resnet.common import protowire as pw
from resnet.errors import ResnetError
from resnet.importers import IMPORTERS
from resnet.importers.base import variance_for_v1_eps
from resnet.modelio.caffeblob import read_blob

# caffe.proto field numbers
_NET_LAYER, _NET_LEGACY_LAYERS = 100, 2  # NetParameter.layer / .layers (V1, no BatchNorm)
_NAME, _TYPE, _BLOBS, _BN_PARAM = 1, 2, 7, 139  # LayerParameter
_V1_NAME, _V1_TYPE, _V1_BLOBS, _V1_V0 = 4, 5, 6, 1  # V1LayerParameter (type: an enum)
_V1_TYPES = {4: "Convolution", 14: "InnerProduct"}  # the V1 enum's types with weights here
_BN_EPS = 3  # BatchNormParameter.eps
CAFFE_BN_EPS = 1e-5  # BatchNormParameter's default


def layers(path: str) -> list[tuple[str, str, list, float]]:
    """(name, type, blobs, BatchNorm eps) of every layer with parameters, in file order."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        net = pw.group(data)
        if _NET_LAYER not in net and _NET_LEGACY_LAYERS in net:
            found = _v1_layers(net[_NET_LEGACY_LAYERS], path)
        else:
            found = []
        for raw in net.get(_NET_LAYER, []):
            layer = pw.group(raw)
            blobs = [read_blob(b) for b in layer.get(_BLOBS, [])]
            if not blobs:
                continue
            eps = CAFFE_BN_EPS
            if _BN_PARAM in layer:
                bits = pw.group(layer[_BN_PARAM][-1]).get(_BN_EPS)
                values = pw.floats(bits) if bits else ()
                if len(values):
                    eps = float(values[-1])
            found.append((pw.text(layer.get(_NAME, [b""])[-1]),
                          pw.text(layer.get(_TYPE, [b""])[-1]), blobs, eps))
    except (pw.WireError, UnicodeDecodeError, ValueError) as e:
        raise ResnetError(f"{path}: not a Caffe model ({e})") from None
    if not found:
        raise ResnetError(f"{path}: not a Caffe model (no layer with weights)")
    return found


def _v1_layers(raws: list, path: str) -> list[tuple[str, str, list, float]]:
    """The layers with weights of the V1 format (which has no BatchNorm), types by name."""
    found = []
    for raw in raws:
        layer = pw.group(raw)
        if _V1_V0 in layer:
            raise ResnetError(f"{path}: a Caffe model in the V0 layer format (before 2014); "
                              "upgrade it with Caffe's upgrade_net_proto_binary")
        blobs = [read_blob(b) for b in layer.get(_V1_BLOBS, [])]
        if not blobs:
            continue
        kind = layer.get(_V1_TYPE, [0])[-1]
        if not isinstance(kind, int):
            raise pw.WireError("a V1 layer type that is not a number")
        found.append((pw.text(layer.get(_V1_NAME, [b""])[-1]),
                      _V1_TYPES.get(kind, f"V1 type {kind}"), blobs, CAFFE_BN_EPS))
    return found


def state(path: str) -> dict[str, np.ndarray]:
    """The network's parameters by Caffe layer name, with Caffe's BN split already merged:
    `<conv>.weight` (and `<conv>.bias` where no BatchNorm follows to take it),
    `<bn>.{gamma,beta,mean,var}`, `<fc>.{weight,bias}`."""
    out: dict[str, np.ndarray] = {}
    conv_bias = None  # (conv name, bias) waiting for the BatchNorm after it
    last_bn = None
    for name, kind, blobs, eps in layers(path):
        if kind != "BatchNorm" and conv_bias is not None:  # no BatchNorm to fold it into:
            out[f"{conv_bias[0]}.bias"] = conv_bias[1].reshape(-1)  # the conv's own (VGG)
            conv_bias = None
        if kind == "Convolution":
            out[f"{name}.weight"] = blobs[0]
            conv_bias = (name, blobs[1]) if len(blobs) > 1 else None
        elif kind == "BatchNorm":
            if len(blobs) != 3:
                raise ResnetError(f"{path}: BatchNorm {name} has {len(blobs)} blobs, expected 3")
            if blobs[2].size != 1 or blobs[0].shape != blobs[1].shape:
                raise ResnetError(f"{path}: BatchNorm {name} has blobs of shapes "
                                  f"{[b.shape for b in blobs]}: expected mean and variance of "
                                  "one shape and a scale factor of one value")
            if not (np.isfinite(eps) and eps >= 0):
                raise ResnetError(f"{path}: BatchNorm {name} has eps {eps}, not a finite "
                                  "number >= 0")
            s = float(blobs[2].reshape(-1)[0])
            factor = 0.0 if s == 0 else 1.0 / s
            mean, var = blobs[0] * factor, blobs[1] * factor
            if conv_bias is not None:  # BN(conv + b) is BN(conv) with its mean moved by b
                if conv_bias[1].size != mean.size:
                    raise ResnetError(f"{path}: convolution {conv_bias[0]} has "
                                      f"{conv_bias[1].size} biases, its BatchNorm {name} "
                                      f"{mean.size} channels")
                mean = mean - conv_bias[1].reshape(mean.shape)
                conv_bias = None
            out[f"{name}.mean"] = mean.astype(np.float32)
            out[f"{name}.var"] = variance_for_v1_eps(var, eps)
            last_bn = name
        elif kind == "Scale":
            if last_bn is None or f"{last_bn}.gamma" in out:
                raise ResnetError(f"{path}: Scale layer {name} follows no BatchNorm")
            out[f"{last_bn}.gamma"] = blobs[0]
            out[f"{last_bn}.beta"] = (blobs[1] if len(blobs) > 1
                                      else np.zeros_like(blobs[0]))
        elif kind == "InnerProduct":
            if any(d != 1 for d in blobs[0].shape[:-2]):
                raise ResnetError(f"{path}: InnerProduct {name} has a weight of shape "
                                  f"{blobs[0].shape}, expected (outputs, inputs)")
            out[f"{name}.weight"] = blobs[0].reshape(blobs[0].shape[-2:])
            if len(blobs) > 1:
                out[f"{name}.bias"] = blobs[1].reshape(-1)
        else:
            raise ResnetError(f"{path}: layer {name} of type {kind!r} has weights; the "
                              "networks read here (ResNet, VGG) have them only in "
                              "Convolution, BatchNorm, Scale and InnerProduct layers")
    if conv_bias is not None:
        out[f"{conv_bias[0]}.bias"] = conv_bias[1].reshape(-1)
    return out


@IMPORTERS.register("caffe")
class CaffeImporter:
    suffixes = (".caffemodel",)
    variants = ("v1",)  # the zoo's own topology
    recipe = None  # v1's: BGR 0-255 minus the mean (--mean=ResNet_mean.binaryproto for Caffe's)

    @staticmethod
    def looks_like(head: bytes) -> bool:
        # NetParameter: field 1 (name) first, or field 100 (layer) when unnamed
        if head[:2] == b"\xa2\x06":
            return True
        if not (len(head) > 2 and head[0] == 0x0A and 0 < head[1] <= len(head) - 2
                and bytes(head[2:2 + head[1]]).isascii()
                and bytes(head[2:2 + head[1]]).decode("ascii").isprintable()):
            return False
        after = bytes(head[2 + head[1]:4 + head[1]])  # the V1 `layers` (field 2) or `layer`
        return b"ResNet" in head or b"VGG" in head or after[:1] == b"\x12" or \
            after == b"\xa2\x06"

    @staticmethod
    def read(path: str) -> dict:
        return state(path)
