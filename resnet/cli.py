"""`python -m resnet --job=...`: the v1 demo's flags, plus batching, formats and strictness.

The choices of --job, --variant, --format, --from and --runner are read from their
registries; the flags become one RunConfig, which is all a job sees.

Exit status: 0 success; 1 an error stopped the run (one line on stderr); 2 bad flags (a flag
the job does not read included); 3 some images were skipped (reported, listed in failed.txt)
and all others were written; 130 Ctrl-C, 143 SIGTERM (what was written is kept, resumable).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys

from resnet import __version__
from resnet.config import (COMPRESSIONS, DTYPES, ENGINES, EXPORT_TARGETS, POOLS, PRECISIONS,
                           RunConfig, parse_actors)
from resnet.errors import ResnetError
from resnet.importers import IMPORTERS
from resnet.jobs import JOBS, foreign, missing, readers
from resnet.modelio.mean import DEFAULT_BGR
from resnet.models import variants
from resnet.outputs import FORMATS
from resnet.runners import RUNNERS


def _bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected 0/1 or true/false, got {text!r}")


def _shard(text: str):
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N such as 1/4, got {text!r}") from None
    if not 1 <= i <= n:
        raise argparse.ArgumentTypeError(f"shard {text}: I must be between 1 and N")
    return i, n


def _at_least(low: int):
    """An argparse type: an integer of at least `low`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def _actors(text: str):
    try:
        return parse_actors(text)
    except ResnetError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


class _Parser(argparse.ArgumentParser):
    """Bad flags in one line and exit 2, instead of argparse's usage dump."""

    def error(self, message):
        self.exit(2, f"resnet: error: {message} (see python -m resnet --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m resnet", allow_abbrev=False,  # --layer=50 is no --layer_num
        description="ResNet features and predictions with v1 model-zoo models on PaddlePaddle.",
        epilog="Exit status: 0 ok, 1 error, 2 bad flags, 3 some images skipped "
               "(see OUTPUT_DIR/failed.txt), 130 Ctrl-C, 143 SIGTERM (both resumable).")
    p.add_argument("--job", required=True, choices=JOBS.names(),
                   help="what to do; a flag the job does not read is refused")
    p.add_argument("--version", action="version", version=f"resnet {__version__}")
    p.add_argument("--model", help="a model folder (v1 parameter files, model.json), or "
                   "pretrained weights by name (resnet50.tv_in1k, vgg16.keras, ...: "
                   "--job=models lists them), downloaded, checked and converted once into "
                   "the weights cache (~/.cache/resnet/weights, RESNET_WEIGHTS_DIR)")
    p.add_argument("--weights_file", metavar="PATH",
                   help="with --model=NAME: the entry's weights file, fetched by hand (for a "
                        "machine that cannot download); its checksum is still checked")
    p.add_argument("--arch", default=None, metavar="NAME",
                   help="the architecture by its registered name (resnet50, resnet50_v1, "
                        "vgg16, vgg16_bn, ...: --job=models lists them); default: the "
                        "model's model.json, else what its parameter files show, else "
                        "resnet50_v1. --layer_num/--variant are a ResNet's v1 spellings")
    p.add_argument("--layer_num", type=int, default=None,
                   help="18, 34, 50, 101 or 152 (default: the model's model.json, else the "
                        "depth its parameter files show, else 50)")
    p.add_argument("--variant", choices=variants(), default=None,
                   help="v1: the zoo's Caffe-style net; v1-pad1: v1 strides, max pool pad 1 "
                        "(Keras, Gluon v1, ONNX zoo v1); v1.5: paddle.vision/torchvision; "
                        "v2: pre-activation (Gluon v2, ONNX zoo v2) (default: the model's "
                        "model.json, else v1; convert: the source's)")
    p.add_argument("--data", help="image list (path [label] per line), a directory (searched "
                   "recursively, in sorted order) or an image; any of them may be an s3:// "
                   "URI (a prefix ending in /), and list lines may be s3:// URIs")
    p.add_argument("--labels_from_folders", action="store_true",
                   help="with --data=DIR: label each image by its first-level folder, the "
                        "folders numbered in sorted order (as torchvision's ImageFolder)")
    p.add_argument("--mean", help="v1 mean.meta, .npy or Caffe .binaryproto (default: BGR "
                   f"{','.join(map(str, DEFAULT_BGR))})")
    p.add_argument("--multi_crop", nargs="?", const=True, default=False, type=_bool,
                   help="10 crops of the short-side-256 image, outputs averaged")
    p.add_argument("--output_layer", default=None,
                   help="comma-separated layer names (extract default: "
                   "res5_3_branch2c_conv,res5_3_branch2c_bn; export default: output; "
                   "diagram: layers to highlight)")
    p.add_argument("--output_dir", default="output", help="where extract writes (default output)")
    p.add_argument("--use_gpu", type=_bool, default=None,
                   help="1/true: GPU (error if none), 0/false: CPU; default: GPU if available")
    p.add_argument("--batch_size", type=int, default=16, help="images per forward (default 16)")
    p.add_argument("--format", choices=FORMATS.names(), default="hdf5",
                   help="extract output: hdf5 (features.h5), parquet (features.parquet/ part "
                        "files), pickle (v1 batch_N), text (v1 C++)")
    p.add_argument("--pool", choices=POOLS, default="none",
                   help="extract: global average / max pooling of each (C, H, W) layer to (C,) "
                        "inside the network (10-crop: each crop pooled, then averaged)")
    p.add_argument("--dtype", choices=DTYPES, default="float32",
                   help="extract: stored type of the features (float16 halves the size; "
                        "values rounded from the float32 results)")
    p.add_argument("--compression", choices=COMPRESSIONS, default="none",
                   help="extract --format=hdf5: dataset compression (default none; lzf: ~10%% "
                        "smaller, gzip ~17%%, both slower: docs/outputs.md: large dumps)")
    p.add_argument("--no_space_check", action="store_true",
                   help="extract: skip the check that the output folder has room for the "
                        "expected output")
    p.add_argument("--output_file", help="predict: also write top-k rows to this CSV file")
    p.add_argument("--top_k", type=_at_least(1), default=5,
                   help="predict: classes shown (default 5)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad image")
    p.add_argument("--resume", action="store_true",
                   help="extract: continue an interrupted run in --output_dir where it stopped")
    p.add_argument("--overwrite", action="store_true",
                   help="extract, merge: replace the output already in --output_dir; "
                        "predict: replace --output_file; convert: replace the model "
                        "directory --model")
    p.add_argument("--from", dest="from_format", choices=IMPORTERS.names(),
                   help="convert: the checkpoint's format ("
                   + ", ".join(f"{n}: {'/'.join(i.suffixes)}" for n, i in IMPORTERS.items())
                   + ")")
    p.add_argument("--input", help="convert: the checkpoint file to convert")
    p.add_argument("--to", choices=EXPORT_TARGETS,
                   help="export: Paddle inference model (.pdmodel) or ONNX file")
    p.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                   help="extract: process only the I-th of N equal parts of the list (1-based), "
                        "into OUTPUT_DIR/shard-I-of-N; join them with --job=merge")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding worker processes (default on CPU: one per core, up to 8, "
                        "decoding between forward passes; on GPU or with --threads under the "
                        "cores: half the cores, 1 to 4, decoding during them; 0: decode on "
                        "the main thread)")
    p.add_argument("--runner", choices=RUNNERS.names(), default="local",
                   help="extract: local (this machine, default) or ray (Ray Data: decoding "
                        "tasks and engine actors on a Ray cluster; docs/scale_out.md)")
    p.add_argument("--ray_address", default=None,
                   help="--runner=ray: auto or HOST:PORT joins a running cluster (default: "
                        "start a local Ray sized to this machine)")
    p.add_argument("--actors", type=_actors, default=None, metavar="N|MIN-MAX",
                   help="--runner=ray: engine actors (default: one per GPU with --use_gpu, "
                        "else as many as the CPUs allow, one CPU left for decoding)")
    p.add_argument("--cpus_per_actor", type=float, default=None,
                   help="--runner=ray: CPUs Ray reserves per engine actor (default 1)")
    p.add_argument("--gpus_per_actor", type=float, default=None,
                   help="--runner=ray: GPUs per engine actor (default 1 with --use_gpu, "
                        "else 0)")
    p.add_argument("--engine", choices=ENGINES, default="inference",
                   help="inference: compiled Paddle Inference model, cached (default); "
                        "dygraph: the plain Paddle reference path")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for the engine (default: all cores; int8 then times "
                        "one engine process per core against one process and keeps the "
                        "faster, docs/performance.md)")
    p.add_argument("--trt", action="store_true", help="GPU: run through TensorRT")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32 (default, checked); bf16 (CPU; measured against fp32), fp16 "
                        "(GPU) and int8 (CPU, or GPU with --trt; calibrated, measured against "
                        "fp32) are opt-in and less exact; auto (CPU): the fastest of int8 / "
                        "bf16 / fp32 that passes int8's bound on the calibration images, "
                        "measured once (docs/performance.md)")
    p.add_argument("--check", action="store_true",
                   help="compare the engine with the dygraph reference on a test batch "
                        "before this run (fp32: within 1e-4 relative, else stop); done "
                        "anyway on the first use of each compiled model")
    p.add_argument("--calibration", metavar="LIST",
                   help="--precision=int8, bf16 or auto: images to calibrate and measure on "
                        "(a list, folder or s3:// prefix, at most 512 used; default: the first "
                        "64 of --data)")
    p.add_argument("--reduced_decode", action="store_true",
                   help="decode JPEGs at least twice the needed size at 1/2, 1/4 or 1/8 scale "
                        "(libjpeg's DCT scaling), then resize as usual: faster on large "
                        "photos, not bit-exact (docs/performance.md)")
    p.add_argument("--output", help="diagram: output file; the suffix picks the format "
                   "(.dot, .png, .svg, .pdf; default resnet_N.png, or ARCH.png with --arch); export: the .onnx file or "
                   "the Paddle inference path prefix")
    p.add_argument("--compact", action="store_true",
                   help="diagram: collapse repeated identity blocks of each stage")
    p.add_argument("--seed", type=int, default=0, help="demo_model: random seed")
    p.add_argument("--clear", action="store_true",
                   help="cache: remove every compiled engine from the cache")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


#: option strings whose names differ from their settings' (RunConfig fields)
_OPTION = {"from_format": "from"}


def given(flags: argparse.ArgumentParser, argv, args) -> list[str]:
    """The settings the command line names (whatever the values: `--format=hdf5` too), found
    by parsing again into a namespace where every setting starts out unset."""
    unset = object()
    probe = flags.parse_args(argv, argparse.Namespace(**dict.fromkeys(vars(args), unset)))
    return [name for name, value in vars(probe).items() if value is not unset]


def refuse_foreign(flags, job: str, names) -> None:
    """A flag the job does not read is a flag error (exit 2), not silently ignored."""
    stray = foreign(JOBS[job], names)
    if stray:
        name = stray[0]
        others = readers(name)
        flags.error(f"--{_OPTION.get(name, name)} is not a flag of --job={job}"
                    + (f"; it is for --job={'/'.join(others)}" if others else ""))


class Terminated(KeyboardInterrupt):
    """SIGTERM (schedulers, `kill`), raised in the main thread as Ctrl-C raises
    KeyboardInterrupt, so the same cleanup runs: the manifest says interrupted, the decoding
    workers are stopped, and --resume continues."""


def _on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the cleanup
    raise Terminated()


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM raises Terminated for the duration (where a handler can be installed: only the
    main thread may)."""
    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None) -> int:
    with _sigterm_interrupts():
        return _main(argv)


def _main(argv) -> int:
    flags = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = flags.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="resnet: %(message)s", stream=sys.stderr)
    if args.batch_size < 1:
        flags.error("--batch_size must be at least 1")
    run = JOBS[args.job]
    flag = missing(run, args)  # a flag error: found before Paddle is even imported
    if flag:
        flags.error(f"--job={args.job} needs --{flag}")
    refuse_foreign(flags, args.job, given(flags, argv, args))
    try:
        result = run(RunConfig.from_args(args))
        return getattr(result, "exit_code", result)
    except ResnetError as e:
        if args.debug:
            raise
        print(f"resnet: error: {e}", file=sys.stderr)
        return e.exit_code
    except Terminated:
        print("resnet: terminated (SIGTERM); what was written so far is kept (extract: rerun "
              "the same command with --resume to continue)", file=sys.stderr)
        return 128 + int(signal.SIGTERM)
    except KeyboardInterrupt:
        print("resnet: interrupted; what was written so far is kept (extract: rerun the same "
              "command with --resume to continue)", file=sys.stderr)
        return 130
    except OSError as e:  # disk full, permissions, vanished files: the user's to fix
        if args.debug:
            raise
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"resnet: error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug: still one line, the traceback on request
        if args.debug:
            raise
        print(f"resnet: internal error: {type(e).__name__}: {e} (rerun with --debug for the "
              "traceback and please report it)", file=sys.stderr)
        return 1
