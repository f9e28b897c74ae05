"""`model.json`: the model card of a weights folder, so its weights are run as trained.

Version 2 (`resnet-model/2`, what convert writes) records the architecture by its registered
name (`resnet50`, `vgg16_bn`, ...), the preprocessing as data (models/preprocessing.Recipe:
channel order, scale, mean, std, resize mode, interpolation, input size and the 10-crop
geometry derived from it), the classes and the source (format, file, sha256, the published
accuracy where the source states one). Version 1 files (a ResNet's layer_num and variant,
the recipe keys of then) load unchanged. v1 zoo directories have none and run as v1 did
(BGR minus the mean, straight to 224). Flags given explicitly (--arch, --layer_num,
--variant, --mean) win.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field, replace

import numpy as np

from resnet.common import jsonread
from resnet.common.files import atomic_write
from resnet.errors import ResnetError
from resnet.models import ARCHS, build_arch, depths, variants
from resnet.models.preprocessing import IMAGENET_RGB, INTERPOLATIONS, V1, Recipe  # noqa: F401

log = logging.getLogger("resnet")
MODEL_JSON = "model.json"
FORMAT = "resnet-model/2"
#: the versions read (1: ResNet only, named by layer_num and variant)
FORMATS_READ = ("resnet-model/1", FORMAT)
CLASS_SOURCES = ("imagenet",)  # the 1000 ImageNet classes in v1's order (resnet/data)
#: the largest short side a recipe may resize to before its centre crop (torchvision's
#: largest evaluation size is 480; a bigger one would only be a typo or an attack)
MAX_SHORT_SIDE = 2048


@dataclass(frozen=True)
class ModelInfo:
    """What model.json says: the architecture (a ResNet's by layer_num and variant, any by
    `arch`), the preprocessing (None: v1's), the classes and the source."""

    layer_num: int | None = 50
    variant: str | None = "v1"
    preprocessing: Recipe | None = None
    classes: str = "imagenet"
    source: dict = field(default_factory=dict)
    arch: str | None = None

    @property
    def architecture(self) -> str:
        """The registered architecture name."""
        if self.arch:
            return self.arch
        from resnet.models.resnet import arch_name

        return arch_name(self.layer_num, self.variant)

    def to_json(self) -> dict:
        arch = ARCHS[self.architecture]
        out = {"format": FORMAT, "arch": arch.name}
        if arch.v1_spelling:  # what readers of version 1 looked for
            out["layer_num"], out["variant"] = arch.v1_spelling
        out["input_size"] = arch.build().input_size
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

    fmt = raw.get("format", FORMATS_READ[0])
    if fmt not in FORMATS_READ:
        raise bad(f"format {fmt!r:.100} is not one this version reads "
                  f"({', '.join(FORMATS_READ)}); a newer resnet wrote it?")
    arch = raw.get("arch")
    layer_num, variant = raw.get("layer_num", 50), raw.get("variant", "v1")
    if arch is not None:
        if not isinstance(arch, str) or arch not in ARCHS:
            raise bad(f"arch {arch!r:.100} is not a registered architecture "
                      "(list them with --job=models)")
        own = ARCHS[arch].v1_spelling or (None, None)
        for key, value in zip(("layer_num", "variant"), own):
            if key in raw and raw[key] != value:
                raise bad(f"{key} {raw[key]!r:.100} contradicts arch {arch!r} "
                          f"({key} {value!r})")
        size = build_arch(arch).input_size
        if "input_size" in raw and raw["input_size"] != size:
            raise bad(f"input_size {raw['input_size']!r:.100} contradicts arch {arch!r} "
                      f"(input size {size})")
        layer_num, variant = own
    else:
        if not isinstance(variant, str) or variant not in variants():
            raise bad(f"variant {variant!r:.100} is not one of {', '.join(variants())}")
        if not _number(layer_num) or layer_num not in depths(variant):
            raise bad(f"layer_num {layer_num!r:.100} is not one of "
                      f"{', '.join(map(str, depths(variant)))}")
        layer_num = int(layer_num)
    classes = raw.get("classes", "imagenet")
    if classes not in CLASS_SOURCES:
        raise bad(f"classes {classes!r:.100}: only {', '.join(CLASS_SOURCES)} is supported")
    info = ModelInfo(layer_num, variant, None, classes,
                     raw.get("source") if isinstance(raw.get("source"), dict) else {}, arch)
    pre = raw.get("preprocessing")
    if pre is None:
        return info
    size = build_arch(info.architecture).input_size
    recipe = _recipe(pre, bad, size)
    if recipe.mean_file:  # the model's own mean image, read as --mean reads one
        from resnet.modelio.mean import load_mean

        mean_path = os.path.join(model_dir, recipe.mean_file)
        if not os.path.isfile(mean_path) or os.path.islink(mean_path):
            raise bad(f"preprocessing.mean_file {recipe.mean_file!r}: no such plain file in "
                      f"{model_dir}")
        recipe = recipe.with_v1_mean(load_mean(mean_path, size))
    return replace(info, preprocessing=recipe)


def _recipe(pre, bad, size: int) -> Recipe:
    """The Recipe a preprocessing object describes, every value checked; `size` is the
    architecture's input size, which `crop` must equal."""
    if not isinstance(pre, dict):
        raise bad("preprocessing must be an object")
    derived = {"resize", "ten_crop"}  # written for readers; checked against the rest
    known = (set(Recipe.__dataclass_fields__) - {"mean_override", "origin"}) | derived
    unknown = sorted(set(pre) - known)
    if unknown:  # a typo here would silently change every feature
        raise bad(f"unknown preprocessing key(s) {', '.join(unknown)}; known: "
                  f"{', '.join(sorted(known))}")
    r = {**Recipe(crop=size).to_json(), "resize": None, "ten_crop": None, **pre}
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
    if not _number(r["crop"]) or r["crop"] != size:
        raise bad(f"preprocessing.crop {r['crop']!r:.100}: the network takes {size}x{size}")
    short = r["resize_short_side"]
    if short is not None and not (isinstance(short, int) and not isinstance(short, bool)
                                  and size <= short <= MAX_SHORT_SIDE):
        raise bad(f"preprocessing.resize_short_side {short!r:.100}: null or an integer from "
                  f"{size} to {MAX_SHORT_SIDE}")
    if r["resize"] not in (None, "short_side" if short else "direct"):
        raise bad(f"preprocessing.resize {r['resize']!r:.100} contradicts resize_short_side "
                  f"{short!r}: 'short_side' goes with a number, 'direct' with null")
    if r["interpolation"] not in INTERPOLATIONS:
        raise bad(f"preprocessing.interpolation {r['interpolation']!r:.100}: use one of "
                  f"{', '.join(INTERPOLATIONS)}")
    mean_file = r.get("mean_file")
    if mean_file is not None and not (isinstance(mean_file, str) and _plain_name(mean_file)):
        raise bad(f"preprocessing.mean_file {mean_file!r:.100}: the name of a file in the "
                  "model folder (no path)")
    recipe = Recipe(r["channel_order"], float(r["scale"]), tuple(map(float, r["mean"])),
                    tuple(map(float, r["std"])), short, size, r["interpolation"], mean_file)
    if r["ten_crop"] not in (None, recipe.to_json()["ten_crop"]):
        raise bad(f"preprocessing.ten_crop {r['ten_crop']!r:.100} is not the geometry this "
                  f"recipe derives ({recipe.to_json()['ten_crop']})")
    return recipe


def _plain_name(name: str) -> bool:
    """A file name inside the folder: no separator, no parent, not hidden."""
    return bool(name) and "/" not in name and "\\" not in name and not name.startswith(".")


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
    """(spec, info) for a job: --arch, else --layer_num / --variant over model.json's ResNet,
    else model.json's architecture, else the one the parameter files show (a v1 zoo
    ResNet-101 needs no --layer_num; a VGG-16 folder is told from a ResNet's by its files).
    An explicit choice that does not fit the files stays an error when they are read."""
    from resnet.models import build

    model_dir = getattr(args, "model", None)
    info = read(model_dir)
    arch = getattr(args, "arch", None)
    layer_num, variant = getattr(args, "layer_num", None), getattr(args, "variant", None)
    if arch and (layer_num is not None or variant is not None):
        raise ResnetError("--arch names the whole network: leave out --layer_num and "
                          "--variant (their v1 spellings)")
    own = info.architecture if info else None
    if arch:
        if own and arch != own:
            log.warning("--arch=%s overrides %s's %s", arch, MODEL_JSON, own)
        return build_arch(arch), info
    if info is not None and info.layer_num is not None:
        for flag, given, mine in (("layer_num", layer_num, info.layer_num),
                                  ("variant", variant, info.variant)):
            if given is not None and given != mine:
                log.warning("--%s=%s overrides %s's %s", flag, given, MODEL_JSON, mine)
    elif info is not None and (layer_num is not None or variant is not None):
        raise ResnetError(f"--layer_num/--variant describe a ResNet, but {MODEL_JSON} says "
                          f"{own}: pass --arch to override it")
    if info is not None and info.layer_num is None:
        return build_arch(own), info
    if layer_num is None and variant is None and info is None:
        found = _found_arch(model_dir)
        if found:
            return build_arch(found), info
    if layer_num is None:
        layer_num = info.layer_num if info else _found_depth(model_dir)
    return build(layer_num, variant or (info.variant if info else "v1")), info


def _found_arch(model_dir: str | None) -> str | None:
    """The architecture a folder without model.json holds by its parameter files (the v1
    zoo's ResNet name where several share them), None when they tell none."""
    from resnet.modelio.params import detect_arch

    return detect_arch(model_dir) if model_dir and os.path.isdir(model_dir) else None


def _found_depth(model_dir: str | None) -> int:
    """A v1 zoo directory's depth, read off its parameter files (50 when they tell none)."""
    from resnet.modelio.params import detect_depth

    depth = detect_depth(model_dir) if model_dir and os.path.isdir(model_dir) else None
    return depth or 50


def preprocessing(info: ModelInfo | None, mean_path: str | None, size: int = 224) -> Recipe:
    """The model's Recipe (v1's when model.json gives none), at the network's input size.

    An explicit --mean (a v1 BGR mean in pixel units) replaces the recipe's mean, converted to
    the recipe's channel order and scale; the recipe's std still applies.
    """
    from dataclasses import replace

    from resnet.modelio.mean import load_mean

    if info is None or info.preprocessing is None:
        recipe = replace(V1, crop=size)
        return recipe if not mean_path else replace(
            recipe, mean_override=load_mean(mean_path, size))
    recipe = info.preprocessing
    if mean_path:
        recipe = recipe.with_v1_mean(load_mean(mean_path, size))
    return recipe


def describe_mean(recipe: Recipe, mean_path: str | None) -> str:
    """The mean line of an extract manifest."""
    if mean_path:
        return os.path.abspath(mean_path)
    return "default BGR" if recipe.origin == "v1" else MODEL_JSON


def describe(recipe: Recipe, multi_crop: bool) -> str:
    """The preprocessing line of an extract manifest."""
    return recipe.describe(multi_crop)
