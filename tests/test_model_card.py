"""model.json version 2, the model card: architecture by name, preprocessing as data, and
version 1 files loading as they always did."""
import json
import os
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from conftest import EXAMPLES

from resnet.errors import ResnetError
from resnet.inputs import imaging
from resnet.modelio import modelinfo
from resnet.models.preprocessing import IMAGENET_RGB, KERAS_CAFFE, V1, Recipe


def _write(folder, doc):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "model.json"), "w") as f:
        json.dump(doc, f)
    return str(folder)


def test_version_2_round_trip_records_the_whole_recipe(tmp_path):
    info = modelinfo.ModelInfo(None, None, KERAS_CAFFE, "imagenet",
                               {"format": "keras", "top1": 71.3}, arch="vgg16")
    modelinfo.write(str(tmp_path), info)
    doc = json.loads((tmp_path / "model.json").read_text())
    assert doc["format"] == "resnet-model/2" and doc["arch"] == "vgg16"
    assert doc["input_size"] == 224 and "layer_num" not in doc
    assert doc["preprocessing"] == {
        "channel_order": "BGR", "scale": 1.0, "mean": [103.939, 116.779, 123.68],
        "std": [1.0, 1.0, 1.0], "resize_short_side": None, "crop": 224,
        "interpolation": "nearest", "resize": "direct",
        "ten_crop": {"short_side": 256, "crop": 224}}
    back = modelinfo.read(str(tmp_path))
    assert back == info and back.architecture == "vgg16"
    # a ResNet keeps the layer_num and variant readers of version 1 look for
    modelinfo.write(str(tmp_path), modelinfo.ModelInfo(18, "v1.5", IMAGENET_RGB))
    doc = json.loads((tmp_path / "model.json").read_text())
    assert (doc["arch"], doc["layer_num"], doc["variant"]) == ("resnet18", 18, "v1.5")
    assert doc["preprocessing"]["resize"] == "short_side"


def test_version_1_files_load_unchanged(tmp_path):
    folder = _write(tmp_path / "m", {
        "format": "resnet-model/1", "layer_num": 34, "variant": "v1.5",
        "preprocessing": {"channel_order": "RGB", "scale": 1 / 255,
                          "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                          "resize_short_side": 256, "crop": 224},
        "classes": "imagenet"})
    info = modelinfo.read(folder)
    assert (info.layer_num, info.variant, info.architecture) == (34, "v1.5", "resnet34")
    assert info.preprocessing == IMAGENET_RGB
    spec, _ = modelinfo.resolve(SimpleNamespace(model=folder, layer_num=None, variant=None,
                                                arch=None))
    assert spec.arch == "resnet34"


@pytest.mark.parametrize("doc,words", [
    ({"format": "resnet-model/3", "arch": "vgg16"}, "format 'resnet-model/3' is not one"),
    ({"arch": "vgg61"}, "arch 'vgg61' is not a registered architecture"),
    ({"arch": "vgg16", "preprocessing": {"resize": "direct", "resize_short_side": 256}},
     "preprocessing.resize 'direct' contradicts resize_short_side 256"),
    ({"arch": "vgg16", "preprocessing": {"interpolation": "lanczos"}},
     "preprocessing.interpolation 'lanczos'"),
    ({"arch": "vgg16", "preprocessing": {"crop": 299}}, "the network takes 224x224"),
    ({"arch": "vgg16", "preprocessing": {"ten_crop": {"short_side": 300, "crop": 224}}},
     "is not the geometry this recipe derives"),
    ({"arch": "resnet50", "layer_num": 101}, "layer_num 101 contradicts arch 'resnet50'"),
    ({"arch": "resnet50", "variant": "v1"}, "variant 'v1' contradicts arch 'resnet50'"),
    ({"arch": "vgg16", "input_size": 299}, "input_size 299 contradicts arch 'vgg16'"),
])
def test_bad_cards_are_refused_in_one_line(tmp_path, doc, words):
    folder = _write(tmp_path / "m", doc)
    with pytest.raises(ResnetError, match=words) as e:
        modelinfo.read(folder)
    assert "\n" not in str(e.value) and "model.json" in str(e.value)


def test_arch_flag_and_card_resolution(tmp_path, caplog):
    folder = _write(tmp_path / "m", {"format": "resnet-model/2", "arch": "vgg16"})

    def resolve(**flags):
        args = {"model": folder, "layer_num": None, "variant": None, "arch": None, **flags}
        return modelinfo.resolve(SimpleNamespace(**args))[0]

    assert resolve().arch == "vgg16"
    assert resolve(arch="vgg16_bn").arch == "vgg16_bn"
    assert "--arch=vgg16_bn overrides model.json's vgg16" in caplog.text
    with pytest.raises(ResnetError, match="--layer_num/--variant describe a ResNet"):
        resolve(layer_num=50)
    with pytest.raises(ResnetError, match="--arch names the whole network"):
        resolve(arch="resnet50", variant="v1")


def test_folders_without_a_card_are_told_by_their_files(tmp_path):
    """v1's files are the v1 zoo's ResNet (v1.5 and v1-pad1 share them); v2's are its own."""
    from resnet.modelio import params
    from resnet.models import build

    for variant, arch in (("v1.5", "resnet18_v1"), ("v2", "resnet18_v2")):
        folder = tmp_path / variant
        spec = build(18, variant)
        params.save_model(str(folder), spec, params.random_params(spec, 1))
        got, info = modelinfo.resolve(SimpleNamespace(model=str(folder), layer_num=None,
                                                      variant=None, arch=None))
        assert (got.arch, info) == (arch, None)


def test_interpolation_and_ten_crop_geometry_follow_the_recipe():
    path = os.path.join(EXAMPLES, "cat.jpg")
    img = cv2.imread(path)
    got = imaging.preprocess(path, KERAS_CAFFE)
    by_hand = cv2.resize(img, (224, 224), interpolation=cv2.INTER_NEAREST).astype(np.float32)
    by_hand = by_hand.transpose(2, 0, 1) - np.float32(KERAS_CAFFE.mean).reshape(3, 1, 1)
    np.testing.assert_array_equal(got[0], by_hand)
    assert not np.array_equal(got, imaging.preprocess(path, V1))  # v1 resamples by area
    # ten crops: the short side scaled in proportion to the input size (256 for 224)
    ten = imaging.preprocess(path, Recipe(crop=224), multi_crop=True)
    resized = imaging.resize_short_side(img, 256)
    assert ten.shape == (10, 3, 224, 224)
    np.testing.assert_array_equal(ten[0], resized[:224, :224].transpose(2, 0, 1)
                                  - np.float32(V1.mean).reshape(3, 1, 1))
    assert Recipe(crop=299).ten_crop_short_side == 342  # 299 x 256 / 224, rounded
