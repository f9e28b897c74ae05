"""`model.json`: what a model directory says about itself, so its weights are run as trained.

v1 zoo directories have none and keep v1's defaults (ResNet-50, v1 variant, BGR minus the
mean). A converted paddle.vision / torchvision / timm model carries its depth, variant and
evaluation recipe (RGB, short side 256, centre crop 224, /255, mean/std), so extract and
predict need no extra flags. Flags given explicitly (--layer_num, --variant, --mean) win.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from resnet.common import jsonread
from resnet.common.files import atomic_write
from resnet.errors import ResnetError
from resnet.modelio.mean import DEFAULT_BGR
from resnet.models import build, depths, variants
from resnet.models.graph import INPUT_SIZE

log = logging.getLogger("resnet")
MODEL_JSON = "model.json"
FORMAT = "resnet-model/1"
CLASS_SOURCES = ("imagenet",)  # the 1000 ImageNet classes in v1's order (resnet/data)
#: the largest short side a recipe may resize to before its centre crop (torchvision's
#: largest evaluation size is 480; a bigger one would only be a typo or an attack)
MAX_SHORT_SIDE = 2048


@dataclass(frozen=True)
class Recipe:
    """How an image becomes the network input: resize, crop, channel order, x scale, - mean, / std.

    mean and std are per channel, in `channel_order`, in scaled units. `resize_short_side`
    None resizes straight to crop x crop (v1's single crop); --multi_crop then uses 256.
    """

    channel_order: str = "BGR"
    scale: float = 1.0
    mean: tuple = DEFAULT_BGR
    std: tuple = (1.0, 1.0, 1.0)
    resize_short_side: int | None = None
    crop: int = INPUT_SIZE
    #: a --mean file overriding `mean`: (3, 1, 1) or (3, crop, crop), recipe order and units
    mean_override: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def mean_array(self) -> np.ndarray:
        if self.mean_override is not None:
            return self.mean_override
        return np.asarray(self.mean, np.float32).reshape(3, 1, 1)

    @property
    def std_array(self) -> np.ndarray:
        return np.asarray(self.std, np.float32).reshape(3, 1, 1)

    def with_v1_mean(self, bgr_mean: np.ndarray) -> "Recipe":
        """This recipe with a v1 mean (BGR, pixel units) put into its channel order and scale."""
        m = np.asarray(bgr_mean, np.float32)
        m = m[::-1] if self.channel_order == "RGB" else m
        return replace(self, mean_override=np.ascontiguousarray(m * np.float32(self.scale)))

    def describe(self, multi_crop: bool = False) -> str:
        size = (f"short side {self.resize_short_side or 256}, 10 crops averaged" if multi_crop
                else f"short side {self.resize_short_side}, centre crop {self.crop}"
                if self.resize_short_side else f"resize to {self.crop}x{self.crop}")
        mean = "the --mean file" if self.mean_override is not None else list(self.mean)
        return (f"model.json: {self.channel_order}, CHW, x {self.scale:.6g}, minus mean {mean}, "
                f"divided by std {list(self.std)}, {size}")

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("mean_override")
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


#: The evaluation recipe of paddle.vision, PaddleClas and torchvision ImageNet ResNets.
IMAGENET_RGB = Recipe("RGB", 1.0 / 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 256,
                      INPUT_SIZE)


@dataclass(frozen=True)
class ModelInfo:
    layer_num: int = 50
    variant: str = "v1"
    preprocessing: Recipe | None = None  # None: v1 (BGR minus --mean or v1's default mean)
    classes: str = "imagenet"
    source: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {"format": FORMAT, "layer_num": self.layer_num, "variant": self.variant}
        if self.preprocessing is not None:
            out["preprocessing"] = self.preprocessing.to_json()
        out["classes"] = self.classes
        if self.source:
            out["source"] = self.source
        return out


def dump(doc: dict, path: str) -> str:
    """Indented JSON with number lists on one line (a raw newline is never inside a string)."""
    text = json.dumps(doc, indent=2)
    text = re.sub(r"\[\n[-+.,0-9eE\s]*\]", lambda m: json.dumps(json.loads(m.group(0))), text)
    atomic_write(path, (text + "\n").encode("utf-8"))
    return path


def write(model_dir: str, info: ModelInfo) -> str:
    return dump(info.to_json(), os.path.join(model_dir, MODEL_JSON))


def read(model_dir: str | None) -> ModelInfo | None:
    """The directory's model.json, validated; None when there is none (a v1 zoo directory)."""
    if not model_dir:
        return None
    path = os.path.join(model_dir, MODEL_JSON)
    if not os.path.isfile(path):
        return None
    raw = jsonread.load(path, max_bytes=1 << 20)  # bounded size and depth, one-line errors
    if not isinstance(raw, dict):
        raise ResnetError(f"{path}: expected a JSON object")

    def bad(what):
        return ResnetError(f"{path}: {what}")

    layer_num, variant = raw.get("layer_num", 50), raw.get("variant", "v1")
    if not isinstance(variant, str) or variant not in variants():
        raise bad(f"variant {variant!r:.100} is not one of {', '.join(variants())}")
    if not _number(layer_num) or layer_num not in depths(variant):
        raise bad(f"layer_num {layer_num!r:.100} is not one of "
                  f"{', '.join(map(str, depths(variant)))}")
    classes = raw.get("classes", "imagenet")
    if classes not in CLASS_SOURCES:
        raise bad(f"classes {classes!r:.100}: only {', '.join(CLASS_SOURCES)} is supported")
    pre = raw.get("preprocessing")
    recipe = None if pre is None else _recipe(pre, bad)
    source = raw.get("source") if isinstance(raw.get("source"), dict) else {}
    return ModelInfo(int(layer_num), variant, recipe, classes, source)


def _recipe(pre, bad) -> Recipe:
    if not isinstance(pre, dict):
        raise bad("preprocessing must be an object")
    known = set(Recipe.__dataclass_fields__) - {"mean_override"}
    unknown = sorted(set(pre) - known)
    if unknown:  # a typo here would silently change every feature
        raise bad(f"unknown preprocessing key(s) {', '.join(unknown)}; known: "
                  f"{', '.join(sorted(known))}")
    r = {**Recipe().to_json(), **pre}
    if r["channel_order"] not in ("RGB", "BGR"):
        raise bad(f"preprocessing.channel_order {r['channel_order']!r}: use RGB or BGR")
    for key in ("mean", "std"):
        v = r[key]
        if not (isinstance(v, list) and len(v) == 3 and all(_number(x) for x in v)):
            raise bad(f"preprocessing.{key} must be a list of 3 numbers, got {v!r:.100}")
    # the values are applied in float32: each must stay finite there, and std and scale
    # (a divisor and a factor) positive and normal, or every feature is NaN, Inf or equal
    if not all(_finite32(x) for x in r["mean"]):
        raise bad(f"preprocessing.mean must be finite numbers, got {r['mean']!r}")
    if not all(_positive32(x) for x in r["std"]):
        raise bad(f"preprocessing.std values must be positive finite numbers (float32 "
                  f"normal), got {r['std']!r}")
    if not (_number(r["scale"]) and _positive32(r["scale"])):
        raise bad(f"preprocessing.scale must be a positive finite number (float32 normal), "
                  f"got {r['scale']!r:.100}")
    if not _number(r["crop"]) or r["crop"] != INPUT_SIZE:
        raise bad(f"preprocessing.crop {r['crop']!r:.100}: the network takes "
                  f"{INPUT_SIZE}x{INPUT_SIZE}")
    short = r["resize_short_side"]
    if short is not None and not (isinstance(short, int) and not isinstance(short, bool)
                                  and INPUT_SIZE <= short <= MAX_SHORT_SIDE):
        raise bad(f"preprocessing.resize_short_side {short!r:.100}: null or an integer from "
                  f"{INPUT_SIZE} to {MAX_SHORT_SIDE}")
    return Recipe(r["channel_order"], float(r["scale"]), tuple(map(float, r["mean"])),
                  tuple(map(float, r["std"])), short, INPUT_SIZE)


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _finite32(x) -> bool:
    """x stays a finite number once made float32 (a huge int would overflow float)."""
    try:
        x = float(x)
    except OverflowError:
        return False
    return math.isfinite(x) and abs(x) <= float(np.finfo(np.float32).max)


def _positive32(x) -> bool:
    """x is a positive float32 normal number: a NaN, Inf, 0 or denormal std or scale would
    make every input NaN, Inf or 0."""
    return _finite32(x) and float(x) >= float(np.finfo(np.float32).tiny)


def resolve(args):
    """(spec, info) for a job: model.json's depth and variant unless --layer_num / --variant.

    A directory without model.json runs at the depth its parameter files show, so a v1 zoo
    ResNet-101 needs no --layer_num; an explicit --layer_num that does not fit stays an error.
    """
    info = read(getattr(args, "model", None))
    layer_num, variant = getattr(args, "layer_num", None), getattr(args, "variant", None)
    if info is not None:
        for flag, given, own in (("layer_num", layer_num, info.layer_num),
                                 ("variant", variant, info.variant)):
            if given is not None and given != own:
                log.warning("--%s=%s overrides %s's %s", flag, given, MODEL_JSON, own)
    if layer_num is None:
        layer_num = info.layer_num if info else _found_depth(getattr(args, "model", None))
    spec = build(layer_num, variant or (info.variant if info else "v1"))
    return spec, info


def _found_depth(model_dir: str | None) -> int:
    """A v1 zoo directory's depth, read off its parameter files (50 when they tell none)."""
    from resnet.modelio.params import detect_depth

    depth = detect_depth(model_dir) if model_dir and os.path.isdir(model_dir) else None
    return depth or 50


def preprocessing(info: ModelInfo | None, mean_path: str | None):
    """The v1 mean array (no recipe: v1 preprocessing), or the model's Recipe.

    An explicit --mean (a v1 BGR mean in pixel units) replaces the recipe's mean, converted to
    the recipe's channel order and scale; the recipe's std still applies.
    """
    from resnet.modelio.mean import load_mean

    if info is None or info.preprocessing is None:
        return load_mean(mean_path)
    recipe = info.preprocessing
    if mean_path:
        recipe = recipe.with_v1_mean(load_mean(mean_path))
    return recipe


def describe_mean(mean, mean_path: str | None) -> str:
    """The mean line of an extract manifest."""
    if mean_path:
        return os.path.abspath(mean_path)
    return MODEL_JSON if isinstance(mean, Recipe) else "default BGR"


def describe(mean, multi_crop: bool) -> str:
    """The preprocessing line of an extract manifest."""
    if isinstance(mean, Recipe):
        return mean.describe(multi_crop)
    return "v1: BGR, CHW, minus mean, " + (
        "short side 256, 10 crops averaged" if multi_crop else "resize to 224x224")
