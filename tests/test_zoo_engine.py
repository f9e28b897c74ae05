"""Inception v3 and Xception through the compiled engine: what VGG and ResNet do not exercise
there (average pools that leave the padding out, 1x7 / 7x1 kernels, depthwise convs, max
pools padded after only) runs in Paddle Inference as in the dygraph executor.

A model folder per architecture (seeded weights, a model.json naming the network, as the
two Inception networks share their parameter files) is extracted from through the Python
API with the default engine, which is compiled, checked against dygraph on first use and
cached; its pooled features must equal the dygraph executor's on the same crops.
"""
import os

import numpy as np
import pytest
from conftest import EXAMPLES
from reference import rel_err
from vgg_weights import PHOTOS, seeded_weights

import resnet
from resnet.inputs import imaging
from resnet.modelio import modelinfo, params
from resnet.models import build_arch
from resnet.models.preprocessing import KERAS_TF_299

#: arch -> the layers read back: each family's hardest nodes and its head
LAYERS = {"inception_v3_keras": ["mixed0_pool", "mixed5", "mixed10", "avgpool", "output"],
          "xception": ["block3_pool", "block4_sepconv1_depthwise", "block13_add",
                       "avgpool", "output"]}


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(LAYERS))
def test_compiled_engine_matches_dygraph(arch, tmp_path):
    spec = build_arch(arch)
    values = seeded_weights(arch, 13, KERAS_TF_299)
    model = tmp_path / "model"
    model.mkdir()
    params.save_model(str(model), spec, values)
    modelinfo.write(str(model), modelinfo.ModelInfo(None, None, KERAS_TF_299, "imagenet",
                                                    {"format": "test"}, arch))
    photo = os.path.join(EXAMPLES, PHOTOS[0])
    summary = resnet.extract(str(model), photo, LAYERS[arch], str(tmp_path / "out"),
                             pool="avg", use_gpu=0)
    assert summary.exit_code == 0 and summary.done == 1, summary
    want = resnet.load(str(model)).run(imaging.preprocess(photo, KERAS_TF_299), LAYERS[arch])
    with resnet.load_features(str(tmp_path / "out")) as got:
        for name in LAYERS[arch]:
            w = want[name].mean(axis=(2, 3)) if want[name].ndim == 4 else want[name]
            assert rel_err(np.asarray(got[name]), w) <= 1e-4, name
