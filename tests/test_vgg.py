"""VGG-16/19 with and without batch norm: every layer against paddle.vision's own network.

paddle.vision's `vgg16/vgg19(batch_norm=...)` is an independent implementation: its layers
are walked here in their own order (conv, [BN], ReLU, ..., max pool; then the classifier's
Linear, ReLU, Dropout, ...) and given the same seeded weights (BN statistics from a probe
batch of the example photos, tests/vgg_weights.py), then each of its intermediate outputs
is compared with the layer of the same meaning in the spec's executor.
"""
import pytest
from reference import rel_err
from vgg_weights import probe_batch, vgg_weights

from resnet.models import build_arch

# one worker: the VGG weights (0.5 GB each) are drawn once per process and shared
pytestmark = pytest.mark.xdist_group("vgg")

#: every layer of the batch-norm variant (conv, bias, BN, ReLU, pools, fc, softmax); the other
#: architectures are the same builder with other counts, compared with paddle.vision at their
#: outputs in test_vgg_import_torch.py (vgg19) and run layer by layer in test_model_contract
ARCHS = ("vgg16_bn",)


def _paddle_vision(arch: str, values: dict):
    """paddle.vision's network with `values` (v1 files) loaded, and its layers' spec names
    in its own order: (sublayer, name of its output in the spec) for features then
    classifier."""
    import paddle
    from paddle.vision.models import vgg16, vgg19

    depth, bn = int(arch[3:5]), arch.endswith("_bn")
    model = (vgg16 if depth == 16 else vgg19)(pretrained=False, batch_norm=bn)
    model.eval()
    named, block, unit = [], 1, 0
    for layer in model.features:
        kind = type(layer).__name__
        if kind == "Conv2D":
            unit += 1
            name = f"conv{block}_{unit}"
            layer.weight.set_value(values[f"_{name}_conv.w0"])
            layer.bias.set_value(values[f"_{name}_conv.wbias"])
            named.append((layer, f"{name}_conv"))
        elif kind == "BatchNorm2D":
            for attr, suffix in (("weight", "w0"), ("bias", "wbias"), ("_mean", "w1"),
                                 ("_variance", "w2")):
                getattr(layer, attr).set_value(values[f"_{name}_bn.{suffix}"])
            named.append((layer, f"{name}_bn"))
        elif kind == "ReLU":
            named.append((layer, name))
        elif kind == "MaxPool2D":
            named.append((layer, f"pool{block}"))
            block, unit = block + 1, 0
    named.append((model.avgpool, None))  # adaptive 7x7: the identity at 224
    named.append((paddle.nn.Flatten(), None))
    fcs = iter(("fc6", "fc7", "fc8"))
    for layer in model.classifier:
        kind = type(layer).__name__
        if kind == "Linear":
            fc = next(fcs)
            key = fc if fc == "fc8" else f"{fc}_fc"
            layer.weight.set_value(values[f"_{key}.w0"])  # Paddle's Linear is (in, out) too
            layer.bias.set_value(values[f"_{key}.wbias"])
            named.append((layer, key))
        elif kind == "ReLU":
            named.append((layer, fc))
        else:
            named.append((layer, None))  # dropout: the identity in eval
    named.append((paddle.nn.Softmax(), "output"))
    return named


@pytest.mark.parametrize("arch", ARCHS)
def test_every_layer_matches_paddle_vision(arch):
    import paddle

    from resnet.runtime.network import Network

    values = vgg_weights(arch)
    spec = build_arch(arch)
    x = probe_batch()[:2]
    named = _paddle_vision(arch, values)
    want = {}
    with paddle.no_grad():
        y = paddle.to_tensor(x)
        for layer, name in named:
            y = layer(y)
            if name:
                want[name] = y.numpy()
    assert set(want) == set(spec.names) - {"input"}  # every layer has its counterpart
    got = Network(spec).load_params(values).run(x, list(want))
    for name in spec.names[1:]:
        err = rel_err(got[name], want[name])
        assert err <= 1e-4, (name, err)
    # the activations are alive: BN statistics from real photos keep layers in range
    assert 0.05 < (got["fc7"] > 0).mean() < 0.95
    assert got["output"].argmax(1).tolist() == want["output"].argmax(1).tolist()
