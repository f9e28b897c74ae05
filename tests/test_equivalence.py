"""Every layer of the executor against the independent reference, on seeded v1-format models."""
import os

import cv2
import numpy as np
import pytest
from conftest import EXAMPLES
from reference import Reference, rel_err

import resnet
from resnet.inputs import imaging
from resnet.modelio.mean import DEFAULT_BGR

TOL = 1e-4


def _single_crop_batch():
    """Two real photos, preprocessed by the test itself: resize to 224, BGR CHW minus mean."""
    mean = np.asarray(DEFAULT_BGR, np.float32).reshape(3, 1, 1)
    out = []
    for name in ("cat.jpg", "rocket.jpg"):
        bgr = cv2.imread(os.path.join(EXAMPLES, name))
        img = cv2.resize(bgr, (224, 224), interpolation=cv2.INTER_AREA)
        out.append(img.transpose(2, 0, 1).astype(np.float32) - mean)
    return np.stack(out)


def _ten_crops_by_hand(bgr, mean):
    """v1 oversample(): corners TL, TR, BL, BR, centre, then those five mirrored."""
    h, w = bgr.shape[:2]
    s = 256 / min(h, w)
    img = cv2.resize(bgr, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_AREA)
    H, W = img.shape[:2]
    tops = [(0, 0), (0, W - 224), (H - 224, 0), (H - 224, W - 224),
            (int(H / 2 - 112), int(W / 2 - 112))]
    crops = [img[t:t + 224, l:l + 224] for t, l in tops]
    crops += [c[:, ::-1] for c in crops]
    return np.stack([c.transpose(2, 0, 1).astype(np.float32) - mean for c in crops])


@pytest.mark.parametrize("layer_num", [50, 101, 152])
def test_every_layer_matches_reference_single_crop(model_factory, layer_num):
    model = model_factory(layer_num)
    net = resnet.load(model, layer_num)
    spec = resnet.build(layer_num)
    batch = _single_crop_batch()
    got = net.run(batch, spec.names)
    want = Reference(model, layer_num).forward(batch)
    assert set(got) == set(want) == set(spec.names)
    errors = {name: rel_err(got[name], want[name]) for name in spec.names}
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOL, f"{worst}: relative error {errors[worst]:.3g}"
    # the v1 specifics the reference hard-codes
    assert got["pool1"].shape == (2, 64, 56, 56)  # ceil mode: 112 -> 56
    assert got["res3_1_branch2a_conv"].shape == (2, 128, 28, 28)  # stride on the first 1x1
    assert got["res3_1_branch2b_conv"].shape == (2, 128, 28, 28)
    assert got["avgpool"].shape == (2, 2048, 1, 1)
    np.testing.assert_allclose(got["output"].sum(axis=1), 1.0, rtol=1e-5)  # softmax
    assert np.all(got["conv1_bn"] >= 0) and np.any(got["res2_1_branch2c_bn"] < 0)  # relu / linear


@pytest.mark.parametrize("layer_num", [50])  # the crops are the same before any depth
def test_ten_crop_average_matches_reference(model_factory, layer_num, tmp_path):
    from resnet.modelio.mean import write_v1_mean
    from resnet.modelio.modelinfo import preprocessing

    model = model_factory(layer_num)
    rng = np.random.default_rng(7)
    mean_arr = (rng.uniform(90, 130, (3, 224, 224))).astype(np.float32)  # not mirror-symmetric
    mean_path = str(tmp_path / "mean.meta")
    write_v1_mean(mean_path, mean_arr)
    mean = preprocessing(None, mean_path)  # v1's recipe with the mean file
    bgr = cv2.imread(os.path.join(EXAMPLES, "coffee.jpg"))
    by_hand = _ten_crops_by_hand(bgr, mean_arr)
    crops = imaging.preprocess(os.path.join(EXAMPLES, "coffee.jpg"), mean, multi_crop=True)
    np.testing.assert_array_equal(crops, by_hand)
    layers = ["pool1", "res4_1_branch2a_conv", "res5_3_branch2c_bn", "output"]
    net = resnet.load(model, layer_num)
    got = {k: v.mean(axis=0) for k, v in net.run(crops, layers).items()}
    want = Reference(model, layer_num).forward(by_hand)
    for name in layers:
        assert rel_err(got[name], want[name].mean(axis=0)) <= TOL, name


def test_requested_subset_in_any_order_and_no_extra_work(model50):
    net = resnet.load(model50, 50)
    batch = _single_crop_batch()[:1]
    out = net.run(batch, ["res2_1_branch1_conv", "conv1_conv"])
    assert list(out) == ["res2_1_branch1_conv", "conv1_conv"]
    plan = [node.name for node, _ in net.plan(["res2_1_branch1_conv", "conv1_conv"])]
    assert plan == ["input", "conv1_conv", "conv1_bn", "pool1", "res2_1_branch1_conv"]
    full = net.run(batch, ["output", "res2_1_branch1_conv"])
    np.testing.assert_array_equal(full["res2_1_branch1_conv"], out["res2_1_branch1_conv"])
