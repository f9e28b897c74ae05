"""Decoding and v1 preprocessing: crops, order, mirroring, mean, and odd image kinds."""
import cv2
import numpy as np
import pytest

from resnet.models.preprocessing import V1
from resnet.inputs import imaging
from resnet.errors import ImageError


def _coord_image(h, w):
    """Blue = row % 256, green = col % 256, red = (row + col) // 2 % 256: positions are readable."""
    r, c = np.mgrid[0:h, 0:w]
    return np.stack([r % 256, c % 256, ((r + c) // 2) % 256], axis=-1).astype(np.uint8)


def test_ten_crops_v1_order_and_mirroring():
    img = _coord_image(256, 300)  # short side already 256: no resize
    zero = np.zeros((3, 1, 1), np.float32)
    crops = imaging.ten_crops(img, zero)
    assert crops.shape == (10, 3, 224, 224) and crops.dtype == np.float32
    tops = [(0, 0), (0, 76), (32, 0), (32, 76), (16, 38)]  # TL, TR, BL, BR, centre
    for k, (t, l) in enumerate(tops):
        assert crops[k, 0, 0, 0] == t and crops[k, 1, 0, 0] == l  # B = row, G = col
        np.testing.assert_array_equal(crops[k + 5], crops[k][:, :, ::-1])


def test_mean_subtracted_after_mirroring():
    img = _coord_image(256, 256)
    mean = np.random.default_rng(0).uniform(0, 50, (3, 224, 224)).astype(np.float32)
    crops = imaging.ten_crops(img, mean)
    raw = imaging.ten_crops(img, np.zeros((3, 1, 1), np.float32))
    np.testing.assert_allclose(crops[5], raw[0][:, :, ::-1] - mean)
    assert not np.allclose(crops[5], (raw[0] - mean)[:, :, ::-1])


def test_single_crop_is_straight_resize_minus_mean():
    img = _coord_image(300, 451)
    mean = np.asarray([1.0, 2.0, 3.0], np.float32).reshape(3, 1, 1)
    out = imaging.single_crop(img, mean)
    want = cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA).transpose(2, 0, 1) - mean
    assert out.shape == (1, 3, 224, 224)
    np.testing.assert_array_equal(out[0], want)


def test_short_side_resize_keeps_aspect():
    assert imaging.resize_short_side(np.zeros((300, 451, 3), np.uint8)).shape == (256, 385, 3)
    assert imaging.resize_short_side(np.zeros((500, 200, 3), np.uint8)).shape == (640, 256, 3)


def test_channel_order_is_bgr(tmp_path):
    img = np.zeros((10, 10, 3), np.uint8)
    img[..., 2] = 200  # red in OpenCV's BGR
    cv2.imwrite(str(tmp_path / "red.png"), img)
    out = imaging.decode(str(tmp_path / "red.png"))
    assert out[0, 0].tolist() == [0, 0, 200]


@pytest.mark.parametrize("kind", ["grey", "rgba", "16bit"])
def test_odd_images_become_8bit_bgr(tmp_path, kind):
    base = _coord_image(40, 50)
    if kind == "grey":
        img, want = base[..., 0], cv2.cvtColor(base[..., 0], cv2.COLOR_GRAY2BGR)
    elif kind == "rgba":
        img = np.dstack([base, np.full((40, 50), 10, np.uint8)])  # nearly transparent
        want = base
    else:
        img, want = base.astype(np.uint16) * 257, base
    path = str(tmp_path / f"{kind}.png")
    cv2.imwrite(path, img)
    out = imaging.decode(path)
    assert out.dtype == np.uint8 and out.shape == (40, 50, 3)
    np.testing.assert_array_equal(out, want)


def test_bad_files_have_reasons(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("hello")
    good = cv2.imencode(".jpg", _coord_image(64, 64))[1].tobytes()
    (tmp_path / "cut.jpg").write_bytes(good[:200])
    (tmp_path / "dir.jpg").mkdir()
    cases = {"empty.jpg": "empty file", "text.jpg": "not a readable image",
             "cut.jpg": "truncated JPEG", "dir.jpg": "is a directory",
             "missing.jpg": "file not found"}
    for name, reason in cases.items():
        with pytest.raises(ImageError, match=reason) as info:
            imaging.decode(str(tmp_path / name))
        assert str(info.value).startswith(str(tmp_path / name))


def _photo(path, w, h, orientation=None):
    """A smooth photo-like JPEG (example/cat.jpg scaled), optionally with an EXIF orientation."""
    import os

    from conftest import EXAMPLES
    from PIL import Image

    img = cv2.resize(cv2.imread(os.path.join(EXAMPLES, "cat.jpg")), (w, h))
    pil = Image.fromarray(img[:, :, ::-1])
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    pil.save(path, quality=92, exif=exif.tobytes())
    return str(path)


@pytest.mark.parametrize("size, need, k", [
    ((1800, 1200), (224, 224), 4), ((448, 448), (224, 224), 2), ((446, 900), (224, 224), 1), ((447, 900), (224, 224), 2),
    ((4000, 3000), 256, 8), ((1000, 510), 256, 1), ((1000, 511), 256, 2), ((1000, 512), 256, 2)])
def test_reduction_keeps_the_size_the_resize_needs(size, need, k):
    assert imaging._reduction(size, need) == k


def test_reduced_decode_is_opt_in_and_close(tmp_path, monkeypatch):
    """Off: bit-for-bit the full decode. On: a large JPEG is decoded at 1/4 scale; the crops
    differ from the full path's by a few grey levels; small images are untouched; EXIF
    orientation is ignored on both paths."""

    mean = V1  # v1's preprocessing (a Recipe)
    big = _photo(tmp_path / "big.jpg", 1800, 1200, orientation=6)
    small = _photo(tmp_path / "small.jpg", 400, 300)
    full = imaging.preprocess(big, mean)
    full_small = imaging.preprocess(small, mean)
    assert imaging.decode(big).shape == (1200, 1800, 3)  # orientation 6 not applied
    assert imaging.decode(big, (224, 224)).shape == (300, 450, 3)
    reduced = imaging.preprocess(big, mean, reduced=True)
    assert reduced.shape == full.shape
    diff = np.abs(reduced - full)
    assert 0 < diff.mean() < 1.5 and diff.max() < 40
    np.testing.assert_array_equal(imaging.preprocess(small, mean, reduced=True), full_small)
    ten = imaging.preprocess(big, mean, multi_crop=True, reduced=True)  # short side 256: 1/4 of 1200 = 300
    assert ten.shape == (10, 3, 224, 224)


def test_reduced_decode_flag_is_recorded_and_never_mixed_on_resume(model_factory, tmp_path):
    import json

    from conftest import run_cli

    model = model_factory(18)
    data = tmp_path / "list.txt"
    data.write_text(_photo(tmp_path / "big.jpg", 1800, 1200) + "\n"
                    + _photo(tmp_path / "small.jpg", 400, 300) + "\n")
    out = tmp_path / "out"
    base = ("--job=extract", f"--model={model}", "--layer_num=18", f"--data={data}",
            f"--output_dir={out}", "--output_layer=output", "--use_gpu=0", "--workers=0")
    r = run_cli(*base, "--reduced_decode")
    assert r.returncode == 0, r.stderr
    assert "--reduced_decode: large JPEGs decoded at 1/2 to 1/8 scale" in r.stderr
    assert json.loads((out / "manifest.json").read_text())["decode"] == "reduced"
    r = run_cli(*base, "--resume")
    assert r.returncode == 1
    assert "decode" in r.stderr.strip().splitlines()[-1]
