"""`--job=export`: a model directory as a Paddle inference model or an ONNX file."""
from __future__ import annotations

import logging
import os

from resnet.config import EXPORT_TARGETS
from resnet.errors import ResnetError
from resnet.jobs import job

log = logging.getLogger("resnet")


@job("export", reads=("model", "arch", "layer_num", "variant", "mean", "to", "output",
                     "output_layer"), named_weights=True)
def run(config) -> int:
    from resnet.modelio import loaded
    from resnet.runtime.export import onnx_file, paddle_inference, sidecar

    args = config
    if not args.model:
        raise ResnetError("--job=export needs --model=DIR")
    if args.to not in EXPORT_TARGETS:
        raise ResnetError(f"--job=export needs --to: one of {', '.join(EXPORT_TARGETS)}")
    if not args.output:
        raise ResnetError("--job=export needs --output: the .onnx file, or the path prefix of "
                          "the Paddle inference files (PREFIX.pdmodel, PREFIX.pdiparams)")
    resolved = loaded.resolve(config.model_settings)
    spec, info = resolved.spec, resolved.info
    layers = spec.check_layers(config.layers_or(["output"]))
    model = resolved.load()  # a bad model fails here, before Paddle compiles
    if args.to == "onnx":
        written = onnx_file(model.values, spec, layers, args.output)
        base = args.output[:-5] if args.output.endswith(".onnx") else args.output
    else:
        base = args.output
        if base.endswith(os.sep) or os.path.isdir(base):  # a folder: FOLDER/model.*
            base = os.path.join(base, "model")
        for ext in (".pdmodel", ".pdiparams", ".json"):
            base = base[:-len(ext)] if base.endswith(ext) else base
        written = paddle_inference(args.model, spec, layers, base)
    written.append(sidecar(base + ".resnet.json", spec, layers, info, args.to))
    log.info("exported %s with outputs %s: %s", spec.family.label(spec),
             ",".join(layers), ", ".join(written))
    return 0

