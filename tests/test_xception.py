"""timm's legacy_xception: its `.pth` converts to the `legacy_xception` network, which
computes what timm's module computes; Keras' Xception and timm's differ where their pools
and eps do.

The reference is timm's `legacy_xception` forward written out here in Paddle's functional
ops from timm's module layout (conv1/bn1/relu, conv2/bn2/relu, block1..block12 with their
`skip`/`skipbn` and `rep` sequences, conv3/bn3/relu, conv4/bn4/relu, global average pool,
fc), reading the converted checkpoint's own keys: an independent walk of the same network,
not the spec's executor. torch is not needed.
"""
import numpy as np
import pytest
from reference import rel_err
from vgg_weights import probe_batch, seeded_weights

import resnet
from resnet.importers.base import STYLES, convert, mapping
from resnet.models import build_arch
from resnet.models.preprocessing import KERAS_TF_299

#: timm's Block(in, out, reps, stride, start_with_relu, grow_first) for block1 .. block12
BLOCKS = [(64, 128, 2, 2, False, True), (128, 256, 2, 2, True, True),
          (256, 728, 2, 2, True, True)] + [(728, 728, 3, 1, True, True)] * 8 + \
         [(728, 1024, 2, 2, True, False)]


def timm_state(values):
    """The seeded values under timm's keys and layouts (fc (out, in)), with the
    num_batches_tracked counters timm's state dicts hold."""
    state = {}
    for name, key, shape, flip in mapping(build_arch("legacy_xception"),
                                          STYLES["timm legacy_xception"]):
        v = values[name]
        state[key] = np.ascontiguousarray(v.T if flip else v).reshape(shape)
    for key in [k for k in state if k.endswith(".running_var")]:
        state[key[:-len("running_var")] + "num_batches_tracked"] = np.array(3, np.int64)
    return state


def timm_forward(state, x):
    """timm legacy_xception's eval forward, from its keys: -> (pooled 2048, logits)."""
    import paddle
    import paddle.nn.functional as F

    t = {k: paddle.to_tensor(v) for k, v in state.items() if v.dtype != np.int64}

    def bn(y, p):
        return F.batch_norm(y, t[f"{p}.running_mean"], t[f"{p}.running_var"],
                            t[f"{p}.weight"], t[f"{p}.bias"], training=False, epsilon=1e-5)

    def sep(y, p):
        y = F.conv2d(y, t[f"{p}.conv1.weight"], padding=1, groups=y.shape[1])
        return F.conv2d(y, t[f"{p}.pointwise.weight"])

    with paddle.no_grad():
        y = F.relu(bn(F.conv2d(paddle.to_tensor(x), t["conv1.weight"], stride=2), "bn1"))
        y = F.relu(bn(F.conv2d(y, t["conv2.weight"]), "bn2"))
        for i, (_, _, reps, stride, start_relu, _) in enumerate(BLOCKS, 1):
            p = f"block{i}"
            skip = bn(F.conv2d(y, t[f"{p}.skip.weight"], stride=stride), f"{p}.skipbn") \
                if f"{p}.skip.weight" in t else y
            z, r = y, 0
            for j in range(reps):  # [relu,] sep, bn per rep; relu first unless start_relu off
                if j or start_relu:
                    z, r = F.relu(z), r + 1
                z = bn(sep(z, f"{p}.rep.{r}"), f"{p}.rep.{r + 1}")
                r += 2
            if stride != 1:
                z = F.max_pool2d(z, 3, 2, 1)
            y = z + skip
        y = F.relu(bn(sep(y, "conv3"), "bn3"))
        y = F.relu(bn(sep(y, "conv4"), "bn4"))
        pooled = F.adaptive_avg_pool2d(y, 1).flatten(1)
        logits = F.linear(pooled, t["fc.weight"].T, t["fc.bias"])
    return pooled.numpy(), logits.numpy()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from test_convert import write_pth

    values = seeded_weights("legacy_xception", 11, KERAS_TF_299)
    state = timm_state(values)
    d = tmp_path_factory.mktemp("timm_xception")
    src = d / "xception-43020ad28.pth"
    write_pth(str(src), state)
    info = convert("torchvision", str(src), str(d / "m"))
    return info, d / "m", state, values


def test_timm_pth_converts_to_legacy_xception(converted):
    """Detected without --arch; timm's recipe (mean = std = 0.5, 333 -> 299, bicubic); the
    converted model's pooled features and logits are timm's forward within 1e-4."""
    info, model_dir, state, _ = converted
    assert info.arch == "legacy_xception" and info.source["names"] == "timm legacy_xception"
    r = info.preprocessing
    assert (r.mean, r.std, r.resize_short_side, r.crop, r.interpolation) == \
        ((0.5,) * 3, (0.5,) * 3, 333, 299, "bicubic")
    x = probe_batch(KERAS_TF_299)[:2]
    pooled, logits = timm_forward(state, x)
    got = resnet.load(str(model_dir)).run(x, ["avgpool", "fc", "block13_add"])
    assert rel_err(got["avgpool"].reshape(pooled.shape), pooled) <= 1e-4
    assert rel_err(got["fc"], logits) <= 1e-4
    assert got["block13_add"].shape == (2, 1024, 10, 10)


def test_keras_and_timm_xception_differ_where_their_pools_do(converted):
    """The same weights in Keras' network and timm's: block 3's pool (74 -> 37) reads windows
    starting on row and column 0 in Keras (TF "same": the padding after only) and on -1 in
    timm (one on every side), so the features differ."""
    from resnet.runtime.network import Network

    _, _, _, values = converted
    x = probe_batch(KERAS_TF_299)[:2]
    layers = ["block3_sepconv2_bn", "block3_pool", "avgpool"]
    keras = Network(build_arch("xception")).load_params(values).run(x, layers)
    timm = Network(build_arch("legacy_xception")).load_params(values).run(x, layers)
    for got, first in ((keras, slice(0, 3)), (timm, slice(0, 2))):
        y, pooled = got["block3_sepconv2_bn"], got["block3_pool"]
        assert y.shape[2:] == (74, 74) and pooled.shape[2:] == (37, 37)
        np.testing.assert_array_equal(pooled[:, :, 0, 0], y[:, :, first, first].max(axis=(2, 3)))
    assert rel_err(keras["avgpool"], timm["avgpool"]) > 1e-3
