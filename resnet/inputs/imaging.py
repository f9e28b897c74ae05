"""Decoding, and preprocessing by a model card's Recipe (models/preprocessing.py).

Every recipe is one code path: resize (straight to the input size, or the short side then a
centre crop), channel order, x scale, minus the mean, divided by std. v1's own (BGR minus
the mean, straight to 224x224) is one recipe. Multi-crop resizes the short side to the
recipe's ten-crop size (256 for 224) and takes v1's 10 crops (4 corners, centre, then the
same 5 mirrored), subtracting the mean from each crop after cropping and mirroring, as v1
did.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import stat
import sys
import tempfile
import threading
from dataclasses import replace

import numpy as np

from resnet.errors import ImageError, file_error, first_line
from resnet.inputs.remote import is_uri, read_bytes
from resnet.models.preprocessing import V1, Recipe

SHORT_SIDE = 256

#: Images with more pixels are refused before their pixels are decoded (decompression bombs);
#: RESNET_MAX_PIXELS overrides it.
MAX_PIXELS = int(os.environ.get("RESNET_MAX_PIXELS", 100_000_000))
OPENCV_PIXELS_ENV = "OPENCV_IO_MAX_IMAGE_PIXELS"


def _cap_opencv() -> bool:
    """Give OpenCV the same pixel limit, for the formats Pillow cannot size (Radiance HDR,
    PFM, PAM, ...): OpenCV checks it between reading a header and allocating the pixels, for
    every format. It reads the setting once, when it is loaded, so it goes into the
    environment before `import cv2` (decoding processes inherit it). Returns whether this
    process's OpenCV has the cap: not if it was loaded before, without the setting.

    With `_spooled` (for the length of one decode), the package's inputs' only writes into
    os.environ: not a way to pass a setting between parts of the program, but settings OpenCV
    reads from the environment only (it has no API for them)."""
    before = os.environ.get(OPENCV_PIXELS_ENV)
    os.environ[OPENCV_PIXELS_ENV] = str(MAX_PIXELS)
    if "cv2" not in sys.modules:
        return True
    try:
        return before is not None and 0 < int(before) <= MAX_PIXELS
    except ValueError:
        return False


#: whether OpenCV refuses images over MAX_PIXELS itself in this process (decode() refuses a
#: file whose size it cannot read first where it does not)
OPENCV_CAPPED = _cap_opencv()

import cv2  # noqa: E402 - after its pixel limit is in the environment

cv2.setNumThreads(1)  # decoding runs in parallel workers; nested OpenCV threads only contend

#: `--reduced_decode` (opt-in): JPEGs at least twice the size the resize needs are decoded at
#: 1/2, 1/4 or 1/8 scale in the DCT (libjpeg's scaling, through OpenCV's IMREAD_REDUCED_*),
#: then resized as usual. Not bit-exact (docs/performance.md). A parameter of preprocess(): the
#: decoding workers get it with their pickled settings, Ray tasks as an argument.
_REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                  8: cv2.IMREAD_REDUCED_COLOR_8}


def _reduction(size, at_least) -> int:
    """The largest DCT scale-down (8, 4, 2 or 1) keeping both sides >= `at_least` (w, h) —
    for a short-side target (an int), the short side >= it."""
    w, h = size
    for k in (8, 4, 2):
        sw, sh = -(-w // k), -(-h // k)  # libjpeg rounds scaled sizes up
        if (min(sw, sh) >= at_least if isinstance(at_least, int)
                else sw >= at_least[0] and sh >= at_least[1]):
            return k
    return 1


def decode(path: str, at_least=None) -> np.ndarray:
    """An 8-bit BGR HWC image, or ImageError saying why this file is not one.

    Grey images are replicated to 3 channels, an alpha channel is dropped (as PIL's
    convert('RGB') did in v1), and 16-bit images are scaled to 8 bits. A URI (s3://...) is
    read through resnet.inputs.remote. `at_least` (the size the resize will need: (w, h), or
    a short side) lets a large JPEG be decoded at reduced scale.
    """
    raw = np.frombuffer(read_bytes(path), dtype=np.uint8) if is_uri(path) else _read_local(path)
    if raw.size == 0:
        raise ImageError(f"{path}: empty file")
    size = _header_size(raw)
    if size and size[0] * size[1] > MAX_PIXELS:
        raise ImageError(f"{path}: {size[0]}x{size[1]} pixels is over the limit of {MAX_PIXELS:,} "
                         "(refused before decoding; set RESNET_MAX_PIXELS to allow it)")
    jpeg = raw[:2].tobytes() == b"\xff\xd8"
    if jpeg and b"\xff\xd9" not in raw[-4096:].tobytes():
        raise ImageError(f"{path}: truncated JPEG (no end-of-image marker)")
    if size is None and not OPENCV_CAPPED:  # nothing would bound what OpenCV allocates
        raise ImageError(f"{path}: not a readable image (its size cannot be read before "
                         "decoding: an unknown format)")
    k = _reduction(size, at_least) if jpeg and size and at_least else 1
    # EXIF orientation is ignored on both paths, as IMREAD_UNCHANGED does
    img = _imdecode(path, raw, cv2.IMREAD_UNCHANGED if k == 1
                    else _REDUCED_FLAGS[k] | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None or img.size == 0:
        raise ImageError(f"{path}: not a readable image (corrupt, truncated or unsupported format)")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageError(f"{path}: unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = np.ascontiguousarray(img[:, :, :3])
    elif img.shape[2] == 1:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] != 3:
        raise ImageError(f"{path}: unsupported channel count {img.shape[2]}")
    return img


def _read_local(path: str) -> np.ndarray:
    """The bytes of a regular file. Anything else (a FIFO, a device, a socket, a folder) is
    refused from its stat, before it is opened: opening a FIFO waits for a writer forever.
    The open itself does not wait either (O_NONBLOCK), should the name change in between."""
    try:
        kind = _not_regular(os.stat(path).st_mode)
        if kind:
            raise ImageError(f"{path}: is {kind}, not an image")
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
                     | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            kind = _not_regular(os.fstat(fd).st_mode)
            if kind:
                raise ImageError(f"{path}: is {kind}, not an image")
            return np.fromfile(f, dtype=np.uint8)
    except OSError as e:
        raise ImageError(file_error(path, e, "not an image")) from None


def _not_regular(mode: int) -> str | None:
    """What a file that is not a regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                       (stat.S_ISBLK, "a device")):
        if test(mode):
            return what
    return "something other than a regular file"


#: OpenCV decodes a few formats from a file only: imdecode copies the bytes into
#: OPENCV_TEMP_PATH (/tmp when unset, whatever TMPDIR says) and reads the copy. When it refuses
#: the image after reading its header (the pixel limit) it leaves the copy there, so each
#: refused bomb would leave its bytes in /tmp for good. Those formats, told by their first
#: bytes (Radiance HDR always; JPEG 2000 and OpenEXR in the builds whose readers need a file),
#: are decoded with OpenCV pointed at a private folder made for the call and removed after
#: it, whatever happened; every other format is decoded in memory and changes nothing.
OPENCV_TEMP_ENV = "OPENCV_TEMP_PATH"
SPOOLED_SIGNATURES = (b"#?RADIANCE", b"#?RGBE", b"\x00\x00\x00\x0cjP  \r\n\x87\n",
                      b"\xff\x4f\xff\x51", b"\x76\x2f\x31\x01")
_spool_lock = threading.Lock()  # one folder at a time: the setting is the process's


@contextlib.contextmanager
def _spooled(raw: np.ndarray):
    """For a format OpenCV decodes from a copy on disk, a private folder for that copy for the
    block (OPENCV_TEMP_PATH, inside the user's own if set), removed afterwards."""
    if not raw[:16].tobytes().startswith(SPOOLED_SIGNATURES):
        yield
        return
    with _spool_lock:
        before = os.environ.get(OPENCV_TEMP_ENV)
        try:
            folder = tempfile.mkdtemp(prefix="resnet-opencv-", dir=before or None)
        except OSError:  # nowhere to make one: OpenCV's own default
            folder = None
        if folder:
            os.environ[OPENCV_TEMP_ENV] = folder
        try:
            yield
        finally:
            if folder:
                if before is None:
                    os.environ.pop(OPENCV_TEMP_ENV, None)
                else:
                    os.environ[OPENCV_TEMP_ENV] = before
                shutil.rmtree(folder, ignore_errors=True)


def _imdecode(path: str, raw: np.ndarray, flags: int):
    """cv2.imdecode, its errors as ImageError: OpenCV's own pixel limit (OPENCV_CAPPED) is an
    assertion raised after the header is read, before the pixels are allocated."""
    try:
        with _spooled(raw):
            return cv2.imdecode(raw, flags)
    except cv2.error as e:
        if "CV_IO_MAX_IMAGE" in str(e):
            raise ImageError(f"{path}: over the limit of {MAX_PIXELS:,} pixels (refused by "
                             "OpenCV from its header, before decoding; set RESNET_MAX_PIXELS "
                             "to allow it)") from None
        raise ImageError(f"{path}: not a readable image ({first_line(str(e))})") from None


def _header_size(raw: np.ndarray):
    """(width, height) from the file header alone, or None when Pillow cannot tell."""
    import io
    import warnings

    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # Pillow's own bomb check would hide the size; ours is below
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's own bomb warning: we decide here
            with Image.open(io.BytesIO(raw.tobytes())) as im:
                return im.size
    except Exception:  # not a format Pillow knows, or a broken header: OpenCV decides
        return None


#: OpenCV's filter for each recipe interpolation, (shrinking, enlarging)
_FILTERS = {"area": (cv2.INTER_AREA, cv2.INTER_LINEAR),
            "bilinear": (cv2.INTER_LINEAR, cv2.INTER_LINEAR),
            "nearest": (cv2.INTER_NEAREST, cv2.INTER_NEAREST),
            "bicubic": (cv2.INTER_CUBIC, cv2.INTER_CUBIC)}


def _resize(img: np.ndarray, width: int, height: int, interpolation: str = "area") -> np.ndarray:
    shrinking = width * height < img.shape[0] * img.shape[1]
    return cv2.resize(img, (width, height),
                      interpolation=_FILTERS[interpolation][0 if shrinking else 1])


def resize_short_side(img: np.ndarray, short: int = SHORT_SIDE,
                      interpolation: str = "area") -> np.ndarray:
    """Resize so the short side is `short`, aspect kept, sizes rounded as v1's image_util."""
    h, w = img.shape[:2]
    scale = short / float(min(h, w))
    return _resize(img, int(round(w * scale)), int(round(h * scale)), interpolation)


def crop_offsets(h: int, w: int, size: int = 224) -> list[tuple[int, int]]:
    """(top, left) of v1's five crops: top-left, top-right, bottom-left, bottom-right, centre."""
    return [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size),
            (int(h / 2.0 - size / 2.0), int(w / 2.0 - size / 2.0))]


def _minus_mean(out: np.ndarray, planes, top: int, left: int, mean: np.ndarray,
                mirror: bool = False) -> None:
    """out (3, S, S) = the crop of the planes at (top, left), mirrored if asked, minus the
    mean: per plane straight from uint8, about 6x faster than a float CHW transpose first."""
    size = out.shape[-1]
    for ch, plane in enumerate(planes):
        crop = plane[top:top + size, left:left + size]
        np.subtract(crop[:, ::-1] if mirror else crop, mean[ch], out=out[ch], dtype=np.float32)


def crops(img: np.ndarray, recipe: Recipe, multi_crop: bool = False) -> np.ndarray:
    """(crops, 3, S, S) float32, S the recipe's input size: one centre crop (the whole image
    resized when the recipe resizes straight to S), or with `multi_crop` v1's 10 crops of the
    image resized to the recipe's ten-crop short side."""
    size, how = recipe.crop, recipe.interpolation
    short = recipe.ten_crop_short_side if multi_crop else recipe.resize_short_side
    resized = resize_short_side(img, short, how) if short else _resize(img, size, size, how)
    planes = cv2.split(resized)
    if recipe.channel_order == "RGB":
        planes = planes[::-1]
    h, w = resized.shape[:2]
    offsets = (crop_offsets(h, w, size) if multi_crop
               else [(int(round((h - size) / 2.0)), int(round((w - size) / 2.0)))])
    n = len(offsets)
    out = np.empty((2 * n if multi_crop else 1, 3, size, size), dtype=np.float32)
    # v1's arithmetic (uint8 minus the mean) when there is nothing else to apply
    mean = recipe.mean_array if recipe.plain else np.zeros((3, 1, 1), np.float32)
    for k, (top, left) in enumerate(offsets):
        _minus_mean(out[k], planes, top, left, mean)
        if multi_crop:
            _minus_mean(out[k + n], planes, top, left, mean, mirror=True)
    if not recipe.plain:
        out *= np.float32(recipe.scale)
        out -= recipe.mean_array
        out /= recipe.std_array
    return out


def single_crop(img: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(1, 3, 224, 224) float32: v1's single crop (straight to 224x224, minus `mean`)."""
    return crops(img, replace(V1, mean_override=mean))


def ten_crops(img: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(10, 3, 224, 224) float32: v1's oversample() on the short-side-256 image, minus `mean`
    (after cropping and mirroring, as v1)."""
    return crops(img, replace(V1, mean_override=mean), multi_crop=True)


def preprocess(path: str, recipe: Recipe, multi_crop: bool = False,
               reduced: bool = False) -> np.ndarray:
    """Decode `path` and return its crops, shaped (crops, 3, S, S); `reduced`: --reduced_decode
    (a large JPEG decoded at reduced scale in the DCT)."""
    img = decode(path, recipe.resize_target(multi_crop) if reduced else None)
    return crops(img, recipe, multi_crop)
