"""ONNX model-zoo style ResNet files (`resnet{N}-v1-7.onnx`, `-v2-7.onnx`), written with the
onnx package from seeded random weights: MXNet Gluon's ResNetV1 graph (stride on the first
1x1, biases on the 1x1 body convs, max pool 3/2 pad 1) and ResNetV2 graph (pre-activation),
with Gluon's initializer names under an instance prefix, as the zoo's converter wrote them.
onnxruntime runs them as the source's own forward.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3),
          152: (3, 8, 36, 3)}


class _Graph:
    def __init__(self, prefix, seed):
        self.prefix, self.rng = prefix, np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], {}

    def name(self, scope, kind):
        k = self.count.get((scope, kind), 0)
        self.count[scope, kind] = k + 1
        return f"{self.prefix}{scope}{kind}{k}"

    def tensor(self, name, value):
        self.inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def conv(self, x, scope, cin, cout, k, stride, bias):
        n = self.name(scope, "conv")
        w = self.rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))
        inputs = [x, self.tensor(f"{n}_weight", w)]
        if bias:
            inputs.append(self.tensor(f"{n}_bias", self.rng.normal(0, 0.1, cout)))
        self.nodes.append(helper.make_node("Conv", inputs, [f"{n}_fwd"], kernel_shape=[k, k],
                                           strides=[stride, stride], pads=[k // 2] * 4))
        return f"{n}_fwd"

    def max_pool(self, x):
        self.nodes.append(helper.make_node("MaxPool", [x], ["pool1"], kernel_shape=[3, 3],
                                           strides=[2, 2], pads=[1, 1, 1, 1]))
        return "pool1"

    def classifier(self, x, cin):
        self.nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
        self.nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
        w = self.tensor(f"{self.prefix}dense0_weight", self.rng.standard_normal((1000, cin)) * 0.05)
        b = self.tensor(f"{self.prefix}dense0_bias", self.rng.normal(0, 0.1, 1000))
        self.nodes.append(helper.make_node("Gemm", ["flat", w, b], ["logits"], transB=1))

    def bn(self, x, scope, c, relu):
        n = self.name(scope, "batchnorm")
        rng = self.rng
        ins = [x] + [self.tensor(f"{n}_{leaf}", v) for leaf, v in (
            ("gamma", rng.uniform(0.3, 0.8, c)), ("beta", rng.normal(0, 0.1, c)),
            ("running_mean", rng.normal(0, 0.1, c)), ("running_var", rng.uniform(0.5, 1.5, c)))]
        self.nodes.append(helper.make_node("BatchNormalization", ins, [f"{n}_fwd"],
                                           epsilon=1e-5))
        if not relu:
            return f"{n}_fwd"
        self.nodes.append(helper.make_node("Relu", [f"{n}_fwd"], [f"{n}_relu"]))
        return f"{n}_relu"


def _blocks(depth, widths):
    """(scope, width, block index, stride) of every block, in order."""
    for i, count in enumerate(BLOCKS[depth]):
        for j in range(count):
            yield f"stage{i + 1}_", widths[i + 1], j, 2 if (i > 0 and j == 0) else 1


def gluon_v1(depth, path, seed=0, prefix="resnetv17_"):
    """Write `path`; returns the names of the graph outputs (logits, pool1, last stage)."""
    basic = depth < 50
    widths = (64, 64, 128, 256, 512) if basic else (64, 256, 512, 1024, 2048)
    g = _Graph(prefix, seed)
    x = g.bn(g.conv("data", "", 3, 64, 7, 2, False), "", 64, True)
    x, cin = g.max_pool(x), 64
    for scope, cout, j, stride in _blocks(depth, widths):
        if basic:
            b = g.bn(g.conv(x, scope, cin, cout, 3, stride, False), scope, cout, True)
            b = g.bn(g.conv(b, scope, cout, cout, 3, 1, False), scope, cout, False)
        else:
            mid = cout // 4
            b = g.bn(g.conv(x, scope, cin, mid, 1, stride, True), scope, mid, True)
            b = g.bn(g.conv(b, scope, mid, mid, 3, 1, False), scope, mid, True)
            b = g.bn(g.conv(b, scope, mid, cout, 1, 1, True), scope, cout, False)
        short = x
        if j == 0 and cin != cout:  # Gluon: downsample after the body
            short = g.bn(g.conv(x, scope, cin, cout, 1, stride, False), scope, cout, False)
        add = f"{scope}add{j}"
        g.nodes.append(helper.make_node("Add", [b, short], [add]))
        g.nodes.append(helper.make_node("Relu", [add], [f"{scope}out{j}"]))
        x, cin = f"{scope}out{j}", cout
    g.classifier(x, cin)
    return _save(g, path, ["logits", "pool1", x])


def _save(g, path, outputs):
    graph = helper.make_graph(
        g.nodes, "resnet", [helper.make_tensor_value_info("data", TensorProto.FLOAT,
                                                          [None, 3, 224, 224])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)],
                              producer_name="mxnet")
    model.ir_version = 3
    onnx.save(model, str(path))
    return outputs


def gluon_v2(depth, path, seed=0, prefix="resnetv24_"):
    """The ONNX zoo's `-v2-7` files: Gluon's ResNetV2 (a batch norm on the input, pre-activation
    blocks, stride on the 3x3, a final batch norm + ReLU). Conv and batch norm names count in
    the order Gluon creates them: a block's bn1, conv1, bn2, conv2(, bn3, conv3), then its
    downsample conv."""
    basic = depth < 50
    widths = (64, 64, 128, 256, 512) if basic else (64, 256, 512, 1024, 2048)
    g = _Graph(prefix, seed)
    n = g.name("", "batchnorm")  # BatchNorm(scale=False, center=False): gamma 1, beta 0
    ins = ["data"] + [g.tensor(f"{n}_{leaf}", v) for leaf, v in (
        ("gamma", np.ones(3)), ("beta", np.zeros(3)), ("running_mean", g.rng.normal(0, 0.5, 3)),
        ("running_var", g.rng.uniform(0.5, 2.0, 3)))]
    g.nodes.append(helper.make_node("BatchNormalization", ins, [f"{n}_fwd"], epsilon=1e-5))
    x = g.bn(g.conv(f"{n}_fwd", "", 3, 64, 7, 2, False), "", 64, True)
    x, cin = g.max_pool(x), 64
    for scope, cout, j, stride in _blocks(depth, widths):
        act = g.bn(x, scope, cin, True)
        if basic:
            b = g.conv(act, scope, cin, cout, 3, stride, False)
            b = g.conv(g.bn(b, scope, cout, True), scope, cout, cout, 3, 1, False)
        else:
            mid = cout // 4
            b = g.conv(act, scope, cin, mid, 1, 1, False)
            b = g.conv(g.bn(b, scope, mid, True), scope, mid, mid, 3, stride, False)
            b = g.conv(g.bn(b, scope, mid, True), scope, mid, cout, 1, 1, False)
        short = x
        if j == 0 and cin != cout:  # created after the body, reads the pre-activation
            short = g.conv(act, scope, cin, cout, 1, stride, False)
        g.nodes.append(helper.make_node("Add", [b, short], [f"{scope}out{j}"]))
        x, cin = f"{scope}out{j}", cout
    g.classifier(g.bn(x, "", cin, True), cin)
    return _save(g, path, ["logits", "pool1", x])


def externalize(path, name, location, data_file=None, offset=0):
    """Mark initializer `name` of the model at `path` EXTERNAL at `location` (as onnx's
    save_model(..., save_as_external_data=True) does); with `data_file` its bytes are
    written there (at `offset`) first. The model is saved back to `path`."""
    model = onnx.load(str(path), load_external_data=False)
    tensor = next(t for t in model.graph.initializer if t.name == name)
    raw = numpy_helper.to_array(tensor).tobytes()
    if data_file is not None:
        with open(data_file, "wb") as f:
            f.write(b"\0" * offset + raw)
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", str(offset)),
                       ("length", str(len(raw)))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return raw
