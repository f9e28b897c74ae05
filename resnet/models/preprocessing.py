"""How an image becomes a network's input, as data: the preprocessing half of a model card.

One Recipe type covers every source: v1's (BGR, minus a mean pixel or a mean image, a direct
resize to 224, OpenCV's area/linear resampling) is one value of it, torchvision's (RGB, /255,
mean/std, short side 256 then a centre crop) another, Keras' "caffe" mode (BGR, mean pixel,
a direct resize as `load_img` does) a third. The decoders (inputs/imaging.py) read only the
fields; model.json (modelio/modelinfo.py) stores them.

Imports nothing from this package.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

#: Per-channel BGR means v1 used when no mean file was given (Caffe's ImageNet mean pixel).
DEFAULT_BGR = (103.939, 116.779, 123.68)
#: `interpolation`: "area" is v1's (OpenCV INTER_AREA when shrinking, INTER_LINEAR when
#: enlarging); the others are one OpenCV filter each way
INTERPOLATIONS = ("area", "bilinear", "nearest", "bicubic")
#: v1's 10-crop geometry: the short side 256 for 224 crops, scaled in proportion elsewhere
TEN_CROP_RATIO = 256 / 224


@dataclass(frozen=True)
class Recipe:
    """Resize (short side then a centre crop, or straight to crop x crop), channel order,
    x scale, - mean, / std. mean and std are per channel, in `channel_order`, in scaled units."""

    channel_order: str = "BGR"
    scale: float = 1.0
    mean: tuple = DEFAULT_BGR
    std: tuple = (1.0, 1.0, 1.0)
    #: None: resize straight to crop x crop (v1, Keras' load_img); else the short side first
    resize_short_side: int | None = None
    #: the network's input size (224, 299, ...): the crop taken from the resized image
    crop: int = 224
    interpolation: str = "area"
    #: a mean image shipped in the model folder (a v1 mean.meta, Caffe .binaryproto or .npy,
    #: BGR pixel units as --mean takes it): its file name there, loaded in place of `mean`
    mean_file: str | None = None
    #: a mean overriding `mean` (a --mean file): (3, 1, 1) or (3, crop, crop), recipe order
    #: and units
    mean_override: np.ndarray | None = field(default=None, compare=False, repr=False)
    #: where it came from, as run manifests say it ("v1" or "model.json")
    origin: str = field(default="model.json", compare=False)

    @property
    def mean_array(self) -> np.ndarray:
        if self.mean_override is not None:
            return self.mean_override
        return np.asarray(self.mean, np.float32).reshape(3, 1, 1)

    @property
    def std_array(self) -> np.ndarray:
        return np.asarray(self.std, np.float32).reshape(3, 1, 1)

    @property
    def plain(self) -> bool:
        """No scale and no std: the crops are the pixels minus the mean (v1's fast path)."""
        return self.scale == 1.0 and tuple(self.std) == (1.0, 1.0, 1.0)

    @property
    def ten_crop_short_side(self) -> int:
        """The short side --multi_crop resizes to before its ten crops."""
        return self.resize_short_side or int(round(self.crop * TEN_CROP_RATIO))

    def resize_target(self, multi_crop: bool = False):
        """What the resize reads: a short side (int) or (w, h)."""
        if multi_crop:
            return self.ten_crop_short_side
        return self.resize_short_side or (self.crop, self.crop)

    def with_v1_mean(self, bgr_mean: np.ndarray) -> "Recipe":
        """This recipe with a v1 mean (BGR, pixel units) put into its channel order and scale."""
        m = np.asarray(bgr_mean, np.float32)
        m = m[::-1] if self.channel_order == "RGB" else m
        return replace(self, mean_override=np.ascontiguousarray(m * np.float32(self.scale)))

    def describe(self, multi_crop: bool = False) -> str:
        """The preprocessing line of a run manifest."""
        if self.origin == "v1":  # the words v1 runs have always written
            return "v1: BGR, CHW, minus mean, " + (
                f"short side {self.ten_crop_short_side}, 10 crops averaged" if multi_crop
                else f"resize to {self.crop}x{self.crop}")
        size = (f"short side {self.ten_crop_short_side}, 10 crops averaged" if multi_crop
                else f"short side {self.resize_short_side}, centre crop {self.crop}"
                if self.resize_short_side else f"resize to {self.crop}x{self.crop}")
        mean = ("the --mean file" if self.mean_override is not None and not self.mean_file
                else f"the model's {self.mean_file}" if self.mean_file else list(self.mean))
        text = (f"model.json: {self.channel_order}, CHW, x {self.scale:.6g}, minus mean {mean}, "
                f"divided by std {list(self.std)}, {size}")
        return text + ("" if self.interpolation == "area" else f", {self.interpolation}")

    def to_json(self) -> dict:
        d = asdict(self)
        for key in ("mean_override", "origin"):
            d.pop(key)
        if d["mean_file"] is None:  # the cards written before it existed stay as they were
            d.pop("mean_file")
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["resize"] = "short_side" if self.resize_short_side else "direct"
        d["ten_crop"] = {"short_side": self.ten_crop_short_side, "crop": self.crop}
        return d


#: v1's preprocessing: BGR minus the mean pixel (or a --mean file), straight to 224x224
V1 = Recipe(origin="v1")
#: The evaluation recipe of paddle.vision, PaddleClas, torchvision and timm ImageNet weights.
#: Resampled with OpenCV's area filter when shrinking, the closest OpenCV has to their
#: antialiased (PIL) bilinear resize.
IMAGENET_RGB = Recipe("RGB", 1.0 / 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 256,
                      224)
#: Keras applications' "caffe" mode (VGG16/19, ResNet50): BGR minus the mean pixel, and
#: `load_img(target_size=(224, 224))`'s direct resize with its default nearest filter
KERAS_CAFFE = Recipe("BGR", 1.0, DEFAULT_BGR, (1.0, 1.0, 1.0), None, 224, "nearest")
#: Keras applications' "tf" mode (InceptionV3, Xception): RGB scaled to [-1, 1] (x / 127.5 - 1),
#: the photo resized straight to 299x299 by `load_img`'s default nearest filter
KERAS_TF_299 = Recipe("RGB", 1.0 / 127.5, (1.0, 1.0, 1.0), (1.0, 1.0, 1.0), None, 299,
                      "nearest")
