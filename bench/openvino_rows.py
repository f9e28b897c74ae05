"""OpenVINO run directly (not through Paddle) on an ONNX file, fp32 and NNCF int8: the rows
bench/precision.py adds when `pip install openvino nncf` is done.

A child process of its own: Paddle Inference carries its own, older OpenVINO, and this one's
fp32 timed far slower in a process where Paddle's engines ran than alone (cause not looked
into). The parent starts it, reads each row's outputs, and asks for timings in its own
interleaved rounds:

    python bench/openvino_rows.py MODEL.onnx IMAGES.npy OUT.npz BATCH [KEEP.json]

- stdout, first line: {"labels": [...]} (or {"missing": "why"}); the outputs of row i on
  every image, output k, are OUT.npz's "i_k";
- KEEP.json: {"keep": [positions], "channels": [output channels of every conv and fc, in
  order]} adds a row with the ops at those positions left out of int8 (NNCF's ignored
  scope), as the engine's int8 levels leave them out;
- then each stdin line "I SECONDS" is answered with row I's images/s over that many seconds
  on the first BATCH images.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time

import numpy as np


def rows(onnx_path: str, images: np.ndarray, keep: dict | None) -> list[tuple[str, object]]:
    """(label, compiled model): fp32 (precision hint f32: OpenVINO would pick bf16 on a CPU
    with native bf16), and NNCF's post-training int8 with its defaults (symmetric per-channel
    weights, per-tensor activations, fast bias correction) calibrated on `images` one at a
    time, the ops it leaves out in OpenVINO's default precision for this CPU; with `keep`,
    that int8 again with the ops at keep["keep"] ignored."""
    import nncf
    import openvino as ov

    cores = len(os.sched_getaffinity(0))
    core = ov.Core()
    nncf.set_log_level(logging.ERROR)
    dataset = nncf.Dataset([images[i:i + 1] for i in range(len(images))])
    fp32 = core.compile_model(core.read_model(onnx_path), "CPU",
                              {"INFERENCE_NUM_THREADS": cores, "INFERENCE_PRECISION_HINT": "f32"})
    made = [(f"OpenVINO {ov.__version__.split('-')[0]} fp32", fp32)]
    for ignored in [[]] + ([keep["keep"]] if keep and keep["keep"] else []):
        model = core.read_model(onnx_path)
        ops = [op for op in model.get_ordered_ops()
               if op.get_type_name() in ("Convolution", "MatMul")]
        if ignored:
            channels = [op.get_output_partial_shape(0)[1].get_length() for op in ops]
            if channels != keep["channels"]:  # another order than the engine's: no row
                print("openvino_rows: the ONNX graph's convolutions are not in the engine's "
                      "order; no row with ops left out", file=sys.stderr)
                continue
        scope = (nncf.IgnoredScope(names=[ops[i].get_friendly_name() for i in ignored])
                 if ignored else None)
        quantized = nncf.quantize(model, dataset, subset_size=len(images), ignored_scope=scope)
        int8 = core.compile_model(quantized, "CPU", {"INFERENCE_NUM_THREADS": cores})
        rest = int8.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        left = f", the engine's {len(ignored)} ops left out" if ignored else ""
        made.append((f"OpenVINO int8 (NNCF {nncf.__version__}{left}; the rest in {rest})",
                     int8))
    return made


def main(onnx_path: str, images_path: str, out_path: str, batch: str,
         keep_path: str = "") -> None:
    # the answers go to the real stdout; anything else printed (NNCF's progress bars) to stderr
    answer = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    images, batch = np.load(images_path), int(batch)
    keep = None
    if keep_path:
        with open(keep_path) as f:
            keep = json.load(f)
    try:
        made = rows(onnx_path, images, keep)
    except ImportError as e:
        print(json.dumps({"missing": str(e)}), file=answer, flush=True)
        return
    runs = []
    saved = {}
    for i, (_, compiled) in enumerate(made):
        request, outs = compiled.create_infer_request(), compiled.outputs

        def run(b, r=request, o=outs):
            result = r.infer({0: b})
            return [np.array(result[k]) for k in o]

        runs.append(run)
        parts = [run(images[j:j + batch]) for j in range(0, len(images), batch)]
        for k in range(len(parts[0])):
            saved[f"{i}_{k}"] = np.concatenate([p[k] for p in parts])
    np.savez(out_path, **saved)
    print(json.dumps({"labels": [label for label, _ in made]}), file=answer, flush=True)
    x = images[:batch]
    for line in sys.stdin:
        i, seconds = line.split()
        run = runs[int(i)]
        run(x)
        run(x)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < float(seconds):
            run(x)
            done += len(x)
        print(done / (time.perf_counter() - start), file=answer, flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:6])
