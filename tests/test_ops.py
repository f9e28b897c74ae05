"""The graph ops the families share, each against a numpy reference on a small graph:
rectangular kernels, per-side (asymmetric) padding, groups (depthwise), conv bias, average
pools that leave the padding out, TF "same" max pools, concat, standalone ReLU, fc without
and with an activation, softmax. ResNet and VGG use a subset; Inception and Xception need
the rest.
"""
import numpy as np

from resnet.models.graph import Nodes, Spec
from resnet.models.ops import OPS

RNG = np.random.default_rng(11)


def _pad(x, t, b, left, r, value=0.0):
    return np.pad(x, ((0, 0), (t, b), (left, r)), constant_values=value)


def _conv(x, w, bias, stride, pads, groups=1):
    x = _pad(x, *pads)
    (sh, sw), (o, cg, kh, kw) = stride, w.shape
    oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    out = np.zeros((o, oh, ow))
    per = o // groups
    for f in range(o):
        g = f // per
        xs = x[g * cg:(g + 1) * cg]
        for i in range(oh):
            for j in range(ow):
                out[f, i, j] = (xs[:, i * sh:i * sh + kh, j * sw:j * sw + kw] * w[f]).sum()
    return out + (bias.reshape(-1, 1, 1) if bias is not None else 0)


def _pool(x, k, s, pads, kind, include_pad=True):
    fill = -np.inf if kind == "max" else 0.0
    xp, ones = _pad(x, *pads, value=fill), _pad(np.ones_like(x), *pads)
    oh, ow = (xp.shape[1] - k) // s + 1, (xp.shape[2] - k) // s + 1
    out = np.zeros((x.shape[0], oh, ow))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, i * s:i * s + k, j * s:j * s + k]
            if kind == "max":
                out[:, i, j] = win.max(axis=(1, 2))
            else:
                n = k * k if include_pad else ones[:, i * s:i * s + k, j * s:j * s + k].sum(
                    axis=(1, 2))
                out[:, i, j] = win.sum(axis=(1, 2)) / n
    return out


def _graph():
    n = Nodes()
    x = n.add("input", "data", [], (4, 10, 10))
    a = n.add("rect", "conv", [x], filters=6, channels=4, size=(1, 3), stride=2,
              pad=(0, 1, 1, 0), bias=True)                      # 1x3, asymmetric pads
    a = n.add("relu", "relu", [a])
    a = n.add("tall", "pool", [a], type="max", size=(2, 1), stride=1, pad=0)
    b = n.add("depthwise", "conv", [x], filters=4, channels=4, size=3, stride=1, pad=1,
              groups=4)                                         # groups = channels
    b = n.add("avg", "pool", [b], type="avg", size=3, stride=1, pad=1,
              count_include_pad=False)                          # Keras' border averages
    b = n.add("same", "pool", [b], type="max", size=3, stride=2, pad=(0, 1, 0, 1))
    n.add("ceil", "pool", [b], type="max", size=2, stride=2, pad=0, ceil=True)
    c = n.add("concat", "concat", [a, b])
    f = n.add("fc1", "fc", [c], act="relu", out=7, **{"in": 10 * 5 * 5})
    f = n.add("fc2", "fc", [f], act=None, out=5, **{"in": 7})
    n.add("output", "softmax", [f])
    return Spec(0, tuple(n), "ops-test", "")


def test_shapes_are_inferred_by_the_ops():
    spec = _graph()
    assert spec["rect"].shape == (6, 6, 5)  # h (10 + 0 + 1 - 1) // 2 + 1, w (10 + 1 - 3) // 2 + 1
    assert spec["tall"].shape == (6, 5, 5)
    assert spec["depthwise"].shape == (4, 10, 10) and spec["avg"].shape == (4, 10, 10)
    assert spec["same"].shape == (4, 5, 5)  # TF "same" at stride 2: ceil(10 / 2)
    assert spec["ceil"].shape == (4, 3, 3)  # ceil mode: 1 + ceil((5 - 2) / 2)
    assert spec["concat"].shape == (10, 5, 5)
    assert spec["depthwise"].params() == [("w0", (4, 1, 3, 3))]
    assert spec["rect"].params() == [("w0", (6, 4, 1, 3)), ("wbias", (6,))]
    assert OPS["conv"].kind(spec["depthwise"]) == "conv 3x3/1 depthwise"
    assert OPS["conv"].kind(spec["rect"]) == "conv 1x3/2"


def test_every_op_matches_numpy():
    from resnet.runtime.network import Network

    spec = _graph()
    values = {name: RNG.standard_normal(shape).astype(np.float32)
              for name, shape in spec.param_files()}
    x = RNG.standard_normal((2, 4, 10, 10)).astype(np.float32)
    got = Network(spec).load_params(values).run(x, spec.names[1:])
    import paddle  # Network builds on zeros and puts the initializers it found back
    assert float(paddle.nn.Linear(4, 4).weight.abs().max()) > 0  # Paddle's random default
    paddle.nn.initializer.set_global_initializer(paddle.nn.initializer.Constant(0.5))
    try:
        Network(spec)
        assert np.all(paddle.nn.Linear(4, 4).weight.numpy() == 0.5)  # a caller's own
    finally:
        paddle.nn.initializer.set_global_initializer(None)

    def p(name, s):
        return values[f"_{name}.{s}"].astype(np.float64)

    for k in range(2):
        xi = x[k].astype(np.float64)
        rect = _conv(xi, p("rect", "w0"), p("rect", "wbias"), (2, 2), (0, 1, 1, 0))
        relu = np.maximum(rect, 0)
        tall = np.maximum(relu[:, :-1], relu[:, 1:])
        dw = _conv(xi, p("depthwise", "w0"), None, (1, 1), (1, 1, 1, 1), groups=4)
        avg = _pool(dw, 3, 1, (1, 1, 1, 1), "avg", include_pad=False)
        same = _pool(avg, 3, 2, (0, 1, 0, 1), "max")
        ceil = _pool(same, 2, 2, (0, 1, 0, 1), "max")  # ceil mode = one more window
        cat = np.concatenate([tall, same])
        fc1 = np.maximum(cat.reshape(-1) @ p("fc1", "w0") + p("fc1", "wbias"), 0)
        fc2 = fc1 @ p("fc2", "w0") + p("fc2", "wbias")
        soft = np.exp(fc2 - fc2.max()) / np.exp(fc2 - fc2.max()).sum()
        want = {"rect": rect, "relu": relu, "tall": tall, "depthwise": dw, "avg": avg,
                "same": same, "ceil": ceil, "concat": cat, "fc1": fc1, "fc2": fc2,
                "output": soft}
        assert set(want) == set(spec.names[1:])
        for name, w in want.items():
            np.testing.assert_allclose(got[name][k], w, rtol=1e-4, atol=1e-5 * np.abs(w).max(),
                                       err_msg=name)
    # the borders of the average pool really leave the padding out, and "same" is not a
    # symmetric pad of 1
    assert not np.allclose(_pool(dw, 3, 1, (1, 1, 1, 1), "avg", include_pad=True), avg)
    assert not np.allclose(_pool(avg, 3, 2, (1, 1, 1, 1), "max")[:, :5, :5], same)
