"""Caffe files written the way Caffe writes them: messages of the caffe.proto schema (the
subset a ResNet uses, same field numbers and packing) built with the protobuf package, filled
from known v1 arrays in the layout of He et al.'s ResNet deploy prototxts (Convolution ->
BatchNorm (statistics times a scale factor) -> Scale; ResNet-50's conv1 with a bias)."""
import re

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def _messages():
    fdp = descriptor_pb2.FileDescriptorProto(name="caffe_subset.proto", package="caffe",
                                             syntax="proto2")

    def add(name, fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name, packed in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
            if packed:
                f.options.packed = True

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    add("BlobShape", [("dim", 1, F.TYPE_INT64, rep, None, True)])
    add("BlobProto", [("num", 1, F.TYPE_INT32, opt, None, False),
                      ("channels", 2, F.TYPE_INT32, opt, None, False),
                      ("height", 3, F.TYPE_INT32, opt, None, False),
                      ("width", 4, F.TYPE_INT32, opt, None, False),
                      ("data", 5, F.TYPE_FLOAT, rep, None, True),
                      ("shape", 7, F.TYPE_MESSAGE, opt, ".caffe.BlobShape", False)])
    add("BatchNormParameter", [("use_global_stats", 1, F.TYPE_BOOL, opt, None, False),
                               ("eps", 3, F.TYPE_FLOAT, opt, None, False)])
    add("LayerParameter", [("name", 1, F.TYPE_STRING, opt, None, False),
                           ("type", 2, F.TYPE_STRING, opt, None, False),
                           ("bottom", 3, F.TYPE_STRING, rep, None, False),
                           ("top", 4, F.TYPE_STRING, rep, None, False),
                           ("blobs", 7, F.TYPE_MESSAGE, rep, ".caffe.BlobProto", False),
                           ("batch_norm_param", 139, F.TYPE_MESSAGE, opt,
                            ".caffe.BatchNormParameter", False)])
    add("NetParameter", [("name", 1, F.TYPE_STRING, opt, None, False),
                         ("layer", 100, F.TYPE_MESSAGE, rep, ".caffe.LayerParameter", False)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"caffe.{n}"))
            for n in ("BlobProto", "LayerParameter", "NetParameter")}


MESSAGES = _messages()


def blob(array, legacy=False):
    b = MESSAGES["BlobProto"]()
    a = np.asarray(array, np.float32)
    if legacy:  # num, channels, height, width: how older files (and mean files) say it
        shape = (1,) * (4 - a.ndim) + a.shape
        b.num, b.channels, b.height, b.width = shape
    else:
        b.shape.dim.extend(a.shape)
    b.data.extend(a.reshape(-1).tolist())
    return b


def caffe_name(node: str, depth: int) -> tuple[str, str]:
    """(conv layer, bn layer) names of a v1 conv node pair, as He et al.'s prototxts."""
    if node.startswith("conv1"):
        return "conv1", "bn_conv1"
    stage, j, branch = re.match(r"res(\d)_(\d+)_branch(\w+)_", node).groups()
    stage, j = int(stage), int(j)
    if depth >= 101 and stage in (3, 4):
        letter = "a" if j == 1 else f"b{j - 1}"
    else:
        letter = chr(ord("a") + j - 1)
    return f"res{stage}{letter}_branch{branch}", f"bn{stage}{letter}_branch{branch}"


def write_caffemodel(path, spec, values, seed=0, eps=None, conv1_bias=None):
    """A .caffemodel of the v1 `values`: BN statistics stored times a factor s (blob 2),
    gamma/beta in a Scale layer, the fc weight as (out, in); with conv1_bias the conv1 layer
    carries that bias and bn_conv1's mean is shifted to match (as ResNet-50's file does);
    with eps the BatchNorm layers declare it and their variances are stored to match."""
    rng = np.random.default_rng(seed)
    net = MESSAGES["NetParameter"](name=f"ResNet-{spec.layer_num}")
    for node in spec:
        if node.op == "conv":
            conv, _ = caffe_name(node.name, spec.layer_num)
            layer = net.layer.add(name=conv, type="Convolution")
            layer.blobs.append(blob(values[f"_{node.name}.w0"]))
            if conv1_bias is not None and conv == "conv1":
                layer.blobs.append(blob(conv1_bias))
        elif node.op == "bn":
            _, bn = caffe_name(node.name, spec.layer_num)
            s = float(rng.uniform(500, 1000))
            mean = values[f"_{node.name}.w1"].astype(np.float64)
            var = values[f"_{node.name}.w2"].astype(np.float64)
            if conv1_bias is not None and bn == "bn_conv1":
                mean = mean + conv1_bias
            if eps is not None:
                var = var - (eps - 1e-5)
            layer = net.layer.add(name=bn, type="BatchNorm")
            for arr in (mean * s, var * s, [s]):
                layer.blobs.append(blob(np.asarray(arr)))
            if eps is not None:
                layer.batch_norm_param.eps = eps
            scale = net.layer.add(name="scale" + bn[2:], type="Scale")
            scale.blobs.append(blob(values[f"_{node.name}.w0"]))
            scale.blobs.append(blob(values[f"_{node.name}.wbias"]))
        elif node.op == "fc":
            layer = net.layer.add(name="fc1000", type="InnerProduct")
            layer.blobs.append(blob(values["_output.w0"].T))
            layer.blobs.append(blob(values["_output.wbias"]))
    with open(path, "wb") as f:
        f.write(net.SerializeToString())
