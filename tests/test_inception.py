"""Inception v3 (the three registered networks) against paddle.vision's own implementation.

paddle.vision's `inception_v3` is an independent implementation of the same network: it is
given the same seeded weights (BN statistics from two probe photos, tests/vgg_weights.py) and
its layers' outputs are caught with forward hooks, then compared with the layers of the same
meaning in the spec's executor: every conv unit (conv, BN, ReLU), every pool, every block's
concatenation, avgpool, fc and the softmax. paddle.vision builds the `inception_v3_paddle`
network (BN eps 1e-5, pools counting the padding); with its BN eps set to 1e-3 it is
torchvision's (`inception_v3`), and with its average pools also leaving the padding out it is
Keras' (`inception_v3_keras`). Its eval-time dropout (x 0.8 before fc) is left out here: it
belongs to its weights' importer, not to the network.
"""
import os

import numpy as np
import pytest
from reference import rel_err
from vgg_weights import EXAMPLES, probe_batch, seeded_weights

import resnet

from resnet.models import build_arch
from resnet.models.inception import BLOCKS, STEM
from resnet.models.preprocessing import Recipe

#: Keras' "tf" preprocessing at 299: RGB scaled to [-1, 1]
TF_299 = Recipe("RGB", 1 / 127.5, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), None, 299, "bilinear")
#: arch -> paddle.vision's inception_v3 patched to compute it: (BN eps, block average pools
#: leave the padding out, the FID graph: 1008 classes and a max pool in the last block)
PATCH = {"inception_v3_paddle": (None, None, False), "inception_v3": (1e-3, None, False),
         "inception_v3_keras": (1e-3, True, False), "inception_v3_fid": (1e-3, True, True)}


def paddle_vision_modules(model) -> dict:
    """Spec conv-unit name -> paddle.vision's ConvNormActivation (conv, BN, ReLU)."""
    out = {unit: getattr(model.inception_stem, "conv_" + tv.split("_", 1)[1])
           for unit, tv in STEM.items()}
    for i, block in enumerate(model.inception_block_list):
        for attr, layer in block.named_children():
            if attr != "branch_pool" and type(layer).__name__ == "ConvNormActivation":
                out[f"mixed{i}_{'branch_pool' if attr == 'branch_pool_conv' else attr}"] = layer
    return out


def paddle_vision_model(values, eps=None, exclusive=None, fid=False):
    """paddle.vision's inception_v3 in eval mode with `values` (v1 files) loaded; `eps` and
    `exclusive` patch its batch norms and block average pools (the other sources' rules);
    `fid` gives it 1008 classes and a 3x3 max pool (stride 1, pad 1) as the last block's
    pool, as pytorch-fid's FIDInceptionE_2 has."""
    import paddle
    from paddle.vision.models import inception_v3

    model = inception_v3(pretrained=False, num_classes=1008 if fid else 1000)
    if fid:
        model.inception_block_list[10].branch_pool = paddle.nn.MaxPool2D(3, 1, 1)
    model.eval()
    for unit, seq in paddle_vision_modules(model).items():
        seq[0].weight.set_value(values[f"_{unit}_conv.w0"])
        for attr, suffix in (("weight", "w0"), ("bias", "wbias"), ("_mean", "w1"),
                             ("_variance", "w2")):
            getattr(seq[1], attr).set_value(values[f"_{unit}_bn.{suffix}"])
        if eps is not None:
            seq[1]._epsilon = eps
    for block in model.inception_block_list:
        if exclusive and type(block.branch_pool).__name__ == "AvgPool2D":
            block.branch_pool.exclusive = True
    model.fc.weight.set_value(values["_fc.w0"])  # (in, out), as the spec stores it
    model.fc.bias.set_value(values["_fc.wbias"])
    return model


def _reference(arch, values, x):
    """paddle.vision's outputs, by spec name."""
    import paddle

    model = paddle_vision_model(values, *PATCH[arch])
    caught, pools = {}, []

    def hook(name):
        return lambda layer, args, y: caught.__setitem__(name, y.numpy())

    for unit, seq in paddle_vision_modules(model).items():
        seq[0].register_forward_post_hook(hook(f"{unit}_conv"))
        seq[1].register_forward_post_hook(hook(f"{unit}_bn"))
        seq.register_forward_post_hook(hook(unit))
    model.inception_stem.max_pool.register_forward_post_hook(
        lambda layer, args, y: pools.append(y.numpy()))  # used twice: pool1, pool2
    for i, block in enumerate(model.inception_block_list):
        block.register_forward_post_hook(hook(f"mixed{i}"))
        block.branch_pool.register_forward_post_hook(hook(f"mixed{i}_pool"))
    model.avg_pool.register_forward_post_hook(
        hook("pool3" if arch == "inception_v3_fid" else "avgpool"))
    with paddle.no_grad():
        y = model.inception_stem(paddle.to_tensor(x))
        for block in model.inception_block_list:
            y = block(y)
        logits = model.fc(paddle.flatten(model.avg_pool(y), 1))  # no dropout
    caught["pool1"], caught["pool2"] = pools
    caught["fc"] = logits.numpy()
    caught["output"] = paddle.nn.functional.softmax(logits, axis=-1).numpy()
    return caught


@pytest.mark.parametrize("arch", sorted(PATCH))
def test_every_layer_matches_paddle_vision(arch):
    from resnet.runtime.network import Network

    spec = build_arch(arch)
    values = seeded_weights(arch, 5, TF_299)
    x = probe_batch(TF_299)[:2]
    want = _reference(arch, values, x)
    inner = {f"{b}_branch3x3" for b in ("mixed9", "mixed10")} | \
        {f"{b}_branch3x3dbl" for b in ("mixed9", "mixed10")}
    assert set(want) == set(spec.names) - {"input"} - inner  # every other layer caught
    got = Network(spec).load_params(values).run(x, spec.names[1:])
    for name in want:
        err = rel_err(got[name], want[name])
        assert err <= 1e-4, (name, err)
    for b in ("mixed9", "mixed10"):  # the E blocks' inner concatenations, by their parts
        for inner_name, parts in ((f"{b}_branch3x3", ("2a", "2b")),
                                  (f"{b}_branch3x3dbl", ("3a", "3b"))):
            np.testing.assert_array_equal(
                got[inner_name],
                np.concatenate([got[f"{inner_name}_{p}"] for p in parts], axis=1))
    # the activations are alive: BN statistics from real photos keep every block in range
    for block in BLOCKS:
        assert 0.05 < (got[block] > 0).mean() < 0.95, block
    assert got["output"].argmax(1).tolist() == want["output"].argmax(1).tolist()


def test_the_source_networks_differ_where_their_sources_do():
    """Same weights: the Keras pooling rule and paddle.vision's eps change the features, so
    they are three networks, not one."""
    from resnet.runtime.network import Network

    values = seeded_weights("inception_v3", 5, TF_299)
    x = probe_batch(TF_299)[:2]
    feats = {a: Network(build_arch(a)).load_params(values).run(x, ["avgpool"])["avgpool"]
             for a in PATCH if a != "inception_v3_fid"}
    assert rel_err(feats["inception_v3_keras"], feats["inception_v3"]) > 1e-3
    assert rel_err(feats["inception_v3_paddle"], feats["inception_v3"]) > 1e-5


def test_paddle_vision_pdparams_converts_to_its_own_forward(tmp_path):
    """paddle.vision's own state dict, saved by paddle.save: the converted model's logits
    are paddle.vision's eval forward, its dropout factor included (folded into fc)."""
    import paddle

    from resnet.importers.base import convert

    values = seeded_weights("inception_v3_paddle", 5, TF_299)
    model = paddle_vision_model(values)
    src = tmp_path / "inception_v3.pdparams"
    paddle.save(model.state_dict(), str(src))
    info = convert("paddle", str(src), str(tmp_path / "out"))
    assert info.arch == "inception_v3_paddle" and info.source["names"] == "paddle.vision"
    x = probe_batch(TF_299)[:2]
    with paddle.no_grad():
        logits = model(paddle.to_tensor(x)).numpy()  # eval: dropout scales by 0.8
    got = resnet.load(str(tmp_path / "out")).run(x, ["fc", "avgpool", "output"])
    assert rel_err(got["fc"], logits) <= 1e-4
    want = _reference("inception_v3_paddle", values, x)
    assert rel_err(got["avgpool"], want["avgpool"]) <= 1e-4  # the features: no factor


def test_torchvision_pth_with_its_aux_head_converts(tmp_path):
    """torchvision's layout (AuxLogits and num_batches_tracked included, as its published
    file holds them): detected as inception_v3, the aux head skipped, the values exact, the
    recipe torchvision's transform_input ([-1, 1] after 342 -> 299)."""
    from test_convert import write_pth

    from resnet.importers.base import STYLES, convert, mapping
    from resnet.modelio import params as params_io

    values = seeded_weights("inception_v3", 5, TF_299)
    spec = build_arch("inception_v3")
    state = {}
    for name, key, shape, flip in mapping(spec, STYLES["torchvision inception_v3"]):
        v = values[name]
        state[key] = np.ascontiguousarray(v.T if flip else v).reshape(shape)
    for key in [k for k in state if k.endswith(".bn.running_var")]:
        state[key[:-len("running_var")] + "num_batches_tracked"] = np.array(7, np.int64)
    rng = np.random.default_rng(0)
    state["AuxLogits.conv0.conv.weight"] = rng.standard_normal((128, 768, 1, 1), np.float32)
    state["AuxLogits.fc.weight"] = rng.standard_normal((1000, 768), np.float32)
    src = tmp_path / "inception_v3_google-0cc3c7bd.pth"
    write_pth(str(src), state)
    info = convert("torchvision", str(src), str(tmp_path / "out"))
    assert info.arch == "inception_v3" and info.source["names"] == "torchvision"
    recipe = info.preprocessing
    assert (recipe.mean, recipe.std, recipe.scale) == ((0.5,) * 3, (0.5,) * 3, 1 / 255)
    assert (recipe.resize_short_side, recipe.crop) == (342, 299)
    loaded = params_io.load_model(str(tmp_path / "out"), spec)
    for name, value in values.items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)


def test_pytorch_fid_pth_converts_to_the_fid_network(tmp_path):
    """pytorch-fid's file (torchvision's names, a 1008-way fc): detected as inception_v3_fid
    without --arch, the values exact, pool3 its default features, the recipe pytorch-fid's
    input (299 bilinear, [-1, 1]); predict refuses its 1008 outputs in one line."""
    from test_convert import write_pth

    from resnet.importers.base import STYLES, convert, mapping
    from resnet.modelio import params as params_io

    values = seeded_weights("inception_v3_fid", 5, TF_299)
    spec = build_arch("inception_v3_fid")
    state = {}
    for name, key, shape, flip in mapping(spec, STYLES["pytorch-fid inception_v3"]):
        v = values[name]
        state[key] = np.ascontiguousarray(v.T if flip else v).reshape(shape)
    assert state["fc.weight"].shape == (1008, 2048)
    src = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    write_pth(str(src), state)
    info = convert("torchvision", str(src), str(tmp_path / "out"))
    assert info.arch == "inception_v3_fid" and info.source["names"] == "pytorch-fid"
    recipe = info.preprocessing
    assert (recipe.scale, recipe.mean, recipe.std) == (1 / 127.5, (1.0,) * 3, (1.0,) * 3)
    assert (recipe.resize_short_side, recipe.crop, recipe.interpolation) == \
        (None, 299, "bilinear")
    loaded = params_io.load_model(str(tmp_path / "out"), spec)
    for name, value in values.items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)
    assert spec.default_features() == ["pool3"] and spec["pool3"].shape == (2048, 1, 1)
    with pytest.raises(resnet.ResnetError) as e:
        resnet.predict(str(tmp_path / "out"), os.path.join(EXAMPLES, "coffee.jpg"))
    assert "1008 classes" in str(e.value) and "\n" not in str(e.value)


def test_gluon_params_convert_to_inception_v3(tmp_path):
    """Gluon's `save_parameters` layout (features.7.3.1.0.weight, output.weight (out, in), the
    E blocks' nested branches): detected as inception_v3, the values exact, the Gluon zoo's
    accuracy and torchvision's recipe recorded."""
    from mxnet_files import write_params

    from resnet.importers.base import STYLES, convert, mapping
    from resnet.modelio import params as params_io

    values = seeded_weights("inception_v3", 5, TF_299)
    spec = build_arch("inception_v3")
    arrays = {key: np.ascontiguousarray(values[name].T if flip else values[name])
              for name, key, _, flip in mapping(spec, STYLES["gluon structural inception_v3"])}
    assert arrays["features.17.1.1.1.0.0.weight"].shape == (384, 384, 3, 1)  # mixed10 3x1
    src = tmp_path / "inceptionv3-ed47ec45.params"
    write_params(str(src), arrays)
    info = convert("mxnet", str(src), str(tmp_path / "out"))
    assert info.arch == "inception_v3" and info.source["names"] == "gluon structural"
    assert (info.source["top1"], info.source["top5"]) == (77.55, 93.64)
    assert (info.preprocessing.resize_short_side, info.preprocessing.crop) == (342, 299)
    loaded = params_io.load_model(str(tmp_path / "out"), spec)
    for name, value in values.items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)


def test_ten_crops_at_299_against_a_direct_computation():
    """--multi_crop at 299: the short side scaled in proportion (299 * 256 / 224 -> 342),
    corners, centre and their mirrors, each 299; then the recipe ([-1, 1], RGB). The
    network's averaged features equal the average of its features on the crops made here."""
    import cv2

    from resnet.inputs import imaging
    from resnet.runtime.network import Network

    path = os.path.join(EXAMPLES, "coffee.jpg")
    bgr = cv2.imread(path)
    h, w = bgr.shape[:2]
    s = 342 / min(h, w)
    img = cv2.resize(bgr, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_LINEAR)
    H, W = img.shape[:2]
    assert min(H, W) == 342 == TF_299.ten_crop_short_side
    tops = [(0, 0), (0, W - 299), (H - 299, 0), (H - 299, W - 299),
            (int(H / 2 - 149.5), int(W / 2 - 149.5))]
    crops = [img[t:t + 299, left:left + 299] for t, left in tops]
    crops += [c[:, ::-1] for c in crops]
    by_hand = np.stack([c[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / np.float32(127.5)
                        - 1 for c in crops])
    got = imaging.preprocess(path, TF_299, multi_crop=True)
    assert got.shape == (10, 3, 299, 299)
    np.testing.assert_allclose(got, by_hand, rtol=0, atol=1e-6)
    spec = build_arch("inception_v3")
    net = Network(spec).load_params(seeded_weights("inception_v3", 5, TF_299))
    averaged = net.run(got, ["avgpool"])["avgpool"].mean(axis=0)
    assert rel_err(averaged, net.run(by_hand, ["avgpool"])["avgpool"].mean(axis=0)) <= 1e-5
