"""v1 parameter files: exact header bytes, round trip, and each corruption's own message."""
import os
import struct

import numpy as np
import pytest

from resnet.modelio import params
from resnet.modelio.params import ModelError
from resnet.models import build


def test_header_is_byte_exact(tmp_path):
    path = str(tmp_path / "_conv1_conv.w0")
    params.write_param(path, np.arange(6, dtype=np.float32).reshape(2, 3))
    raw = open(path, "rb").read()
    assert raw[:16] == struct.pack("IIQ", 0, 4, 6) == b"\0\0\0\0\4\0\0\0\6\0\0\0\0\0\0\0"
    assert raw[16:] == np.arange(6, dtype="<f4").tobytes()
    assert len(raw) == 16 + 6 * 4


def test_round_trip_whole_model(tmp_path):
    spec = build(50)
    values = params.random_params(spec, seed=3)
    params.save_model(str(tmp_path), spec, values)
    files = sorted(os.listdir(tmp_path))
    assert files == sorted(name for name, _ in spec.param_files())
    assert len(files) == 53 * 4 + 53 + 2  # 53 bn (4 files), 53 conv, fc w0 + wbias
    back = params.load_model(str(tmp_path), spec)
    for name, value in values.items():
        np.testing.assert_array_equal(back[name], value)
    assert back["_output.w0"].shape == (2048, 1000)
    assert back["_conv1_conv.w0"].shape == (64, 3, 7, 7)


def _one(tmp_path, count=64 * 3 * 7 * 7):
    path = str(tmp_path / "_conv1_conv.w0")
    params.write_param(path, np.ones(count, np.float32))
    return path


def test_truncated_data(tmp_path):
    path = _one(tmp_path)
    with open(path, "r+b") as f:
        f.truncate(16 + 100)
    with pytest.raises(ModelError, match=r"_conv1_conv.w0: wrong file length: expected 37648 "
                                         r"bytes for 9408 values, found 116"):
        params.read_param(path, (64, 3, 7, 7))


def test_truncated_header(tmp_path):
    path = _one(tmp_path)
    with open(path, "r+b") as f:
        f.truncate(10)
    with pytest.raises(ModelError, match="_conv1_conv.w0: truncated header: file has 10 bytes"):
        params.read_param(path, (64, 3, 7, 7))


@pytest.mark.parametrize("fmt,size,found", [(1, 4, "format 1 and value size 4"),
                                            (0, 8, "format 0 and value size 8")])
def test_wrong_header(tmp_path, fmt, size, found):
    path = _one(tmp_path)
    with open(path, "r+b") as f:
        f.write(struct.pack("<iI", fmt, size))
    with pytest.raises(ModelError, match=f"_conv1_conv.w0: bad header: expected format 0 and "
                                         f"value size 4, found {found}"):
        params.read_param(path, (64, 3, 7, 7))


def test_wrong_count(tmp_path):
    path = _one(tmp_path, count=100)
    with pytest.raises(ModelError, match=r"_conv1_conv.w0: wrong element count: expected 9408 "
                                         r"for shape \(64, 3, 7, 7\), found 100"):
        params.read_param(path, (64, 3, 7, 7))


def test_all_missing_files_in_one_error(tmp_path):
    spec = build(50)
    params.save_model(str(tmp_path), spec, params.random_params(spec))
    for name in ("_conv1_bn.w1", "_res4_2_branch2b_conv.w0", "_output.wbias"):
        os.remove(tmp_path / name)
    with pytest.raises(ModelError) as info:
        params.load_model(str(tmp_path), spec)
    msg = str(info.value)
    assert "3 of 267 parameter files missing for ResNet-50" in msg
    for name in ("_conv1_bn.w1", "_res4_2_branch2b_conv.w0", "_output.wbias"):
        assert name in msg


def test_model_of_other_depth_is_refused(tmp_path):
    params.save_model(str(tmp_path), build(50), params.random_params(build(50)))
    with pytest.raises(ModelError, match=r"parameter files missing for ResNet-101: .*"
                                         r"holds a ResNet-50: pass --layer_num=50"):
        params.load_model(str(tmp_path), build(101))


def test_missing_directory(tmp_path):
    with pytest.raises(ModelError, match="nowhere: model directory not found"):
        params.load_model(str(tmp_path / "nowhere"), build(50))


def test_save_checks_shapes(tmp_path):
    spec = build(50)
    values = params.random_params(spec)
    values["_conv1_conv.w0"] = np.zeros((64, 3, 3, 3), np.float32)
    with pytest.raises(ModelError, match=r"_conv1_conv.w0 has shape \(64, 3, 3, 3\), "
                                         r"expected \(64, 3, 7, 7\)"):
        params.save_model(str(tmp_path), spec, values)
    assert not os.listdir(tmp_path)


def test_deeper_model_loaded_as_shallower_is_refused(tmp_path):
    params.save_model(str(tmp_path), build(101), params.random_params(build(101)))
    with pytest.raises(ModelError, match=r"255 parameter files are not part of ResNet-50 .*"
                                         r"holds a ResNet-101: pass --layer_num=101"):
        params.load_model(str(tmp_path), build(50))
