"""The Ray Data runner: one extract spread over a Ray cluster, from a laptop to GPU nodes.

The list is cut into parts (outputs/parts.py). Each part is decoded by a Ray CPU task, then
run through the network by one of a pool of actors, each of which builds the engine once and
writes its parts' files itself, so there is no single writer. Ray retries tasks and restarts
actors lost with a node; a part is rewritten whole under its own name, so a retry never
duplicates a row. The driver only watches: one progress line for the whole cluster, and
--resume after the driver itself died redoes the parts without a done-marker.

Ray imports lazily (the `ray` extra); nothing here runs unless --runner=ray.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from resnet.common.cpu import usable_cores
from resnet.common.progress import Progress
from resnet.errors import ImageError, ResnetError
from resnet.inputs.facts import crops_per_image
from resnet.inputs.lists import Item
from resnet.outputs.parts import PART_BYTES
from resnet.runners import RUNNERS
from resnet.runners.base import Extracted, Extraction

log = logging.getLogger("resnet")
HINT = "--runner=ray needs Ray Data: pip install -e \".[ray]\" (or: pip install 'ray[data]>=2.60')"
#: CPUs kept free of engine actors: decoding tasks need one, or Ray waits forever (an actor
#: pool on every CPU starves the tasks that feed it)
DECODE_CPUS = 1
#: the user's environment passed on to every task and actor (caches, decoder limits, S3
#: credentials); the run's own settings travel in PartJob, never through the environment
FORWARD_ENV = ("RESNET_", "AWS_")


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is a separate extra of Ray
    except ImportError:
        raise ResnetError(HINT) from None
    return ray


@dataclass(frozen=True)
class Pool:
    """The engine actors: how many, what each reserves, the engine threads each runs."""

    min: int
    max: int
    cpus: float
    gpus: float
    threads: int


def size_pool(ray, engine, nodes: list[dict]) -> Pool:
    """The actor pool for the RaySettings `ray` and EngineSettings `engine` (--use_gpu,
    --threads) on a cluster whose alive nodes have `nodes` resources ({"CPU": n, "GPU": n});
    a ResnetError for any pool that could never run."""
    cpus_total = sum(n.get("CPU", 0) for n in nodes)
    gpus_total = sum(n.get("GPU", 0) for n in nodes)
    cpus = 1.0 if ray.cpus_per_actor is None else float(ray.cpus_per_actor)
    gpus = float(ray.gpus_per_actor if ray.gpus_per_actor is not None
                 else (1 if engine.use_gpu else 0))
    fitting = max(1, int((cpus_total - DECODE_CPUS) // cpus)) if cpus else 1  # CPU actors
    if ray.actors:
        low, high = ray.actors
    elif gpus:
        low = high = max(1, int(gpus_total // gpus))
    else:
        low = high = fitting
    where = f"the cluster has {cpus_total:g} CPUs and {gpus_total:g} GPUs"
    if gpus and high * gpus > gpus_total:
        raise ResnetError(f"{high} actors x {gpus:g} GPUs need {high * gpus:g} GPUs; {where} "
                          "(--actors, --gpus_per_actor)")
    if high * cpus > cpus_total - DECODE_CPUS:
        raise ResnetError(
            f"{high} actors x {cpus:g} CPUs leave {cpus_total - high * cpus:g} of the "
            f"cluster's {cpus_total:g} CPUs for decoding, which needs {DECODE_CPUS}: Ray would "
            f"wait forever; use --actors={fitting} or a smaller --cpus_per_actor")
    if cpus > max((n.get("CPU", 0) for n in nodes), default=0):
        raise ResnetError(f"--cpus_per_actor={cpus:g} is more than any node has; {where}")
    if engine.threads:
        threads = engine.threads
    else:  # the node's cores shared among the actors it is likely to hold
        with_cpus = [n["CPU"] for n in nodes if n.get("CPU", 0) >= cpus] or [1]
        per_node = math.ceil(high / len(with_cpus))
        threads = max(1, int(min(with_cpus) // per_node))
    return Pool(low, high, cpus, gpus, threads)


@dataclass(frozen=True)
class PartJob:
    """What every task and actor needs to know, sent once (pickled) to each."""

    model: object  # config.ModelSettings: each actor resolves and loads the model itself
    inputs: object  # config.InputSettings
    engine: object  # config.EngineSettings, with the threads sized for each actor
    output: object  # config.OutputSettings
    preprocessing: object
    layers: list
    shapes: dict
    meta: dict
    output_dir: str
    plan: object  # parts.PartPlan
    sha256: str
    env: dict
    use_gpu: bool  # what the actor pool reserved: a GPU actor runs on its GPU, others on CPU

    def store(self):
        from resnet.outputs.parts import PartStore

        return PartStore(self.output_dir, self.output.format, self.shapes, self.meta, self.plan)


def _enter(job: PartJob) -> None:
    os.environ.update(job.env)


def _node_cache() -> None:
    """The driver's engine cache where this node can write it (a shared filesystem: compiled
    once for the cluster), else this node's own default cache (compiled once per node)."""
    from resnet.common.files import existing_ancestor
    from resnet.runtime.engine import CACHE_ENV

    cache = os.environ.get(CACHE_ENV)
    if cache and not os.access(existing_ancestor(cache), os.W_OK | os.X_OK):
        del os.environ[CACHE_ENV]


def decode_part(row: dict, job: PartJob) -> dict:
    """A Ray task: one part's images decoded; a bad image is recorded, never raised."""
    from resnet.inputs.decoding import crops_or_error

    _enter(job)
    lo, paths = int(row["lo"]), json.loads(row["paths"])
    pixels, good, failed = [], [], []
    for j, path in enumerate(paths):
        out = crops_or_error(path, job.preprocessing, job.inputs.multi_crop,
                             job.inputs.reduced_decode)
        if isinstance(out, ImageError):
            failed.append([lo + j, str(out)])
        else:
            pixels.append(out)
            good.append(lo + j)
    x = np.concatenate(pixels) if pixels else np.zeros((0,), np.float32)
    meta = {"good": good, "failed": failed, "shape": list(x.shape)}
    return {"part": row["part"], "pixels": x.tobytes(), "keys": row["keys"],
            "labels": row["labels"], "meta": json.dumps(meta)}


class PartWorker:
    """A Ray actor: builds the engine once, then runs and writes whole parts."""

    def __init__(self, job: PartJob):
        self.job, self.error, self.auto = job, "", ""
        try:
            self._start(job)
        except (ResnetError, OSError) as e:  # reported by the driver in one line, not retried
            self.error = _message(e)

    def _start(self, job: PartJob) -> None:
        from resnet.modelio import loaded
        from resnet.runners.local import engine_for
        from resnet.runtime.paddle_env import select_device

        _enter(job)
        _node_cache()
        logging.basicConfig(level=logging.WARNING)
        self.store = job.store()
        self.crops = crops_per_image(job.inputs.multi_crop)
        model = loaded.resolve(job.model).load()
        if model.sha256 != job.sha256:
            raise ResnetError(f"{job.model.model}: differs on this node from the driver's "
                              "copy (parameter checksums differ)")
        device = select_device(job.use_gpu)
        self.net = engine_for(job.engine, job.inputs, model, job.layers, device)
        record = getattr(self.net, "auto", None)  # --precision=auto: what this actor chose
        if record:
            import ray

            self.auto = json.dumps({"node": ray.get_runtime_context().get_node_id(),
                                    "record": record})

    def __call__(self, row: dict) -> dict:
        job, k = self.job, int(row["part"])
        meta = json.loads(row["meta"])
        failed = meta["failed"]
        result = {"part": k, "rows": 0, "failed": json.dumps([why for _, why in failed]),
                  "error": self.error, "auto": self.auto}
        if self.error:
            return result
        if failed and job.inputs.strict:
            result["error"] = f"{failed[0][1]} (stopped: --strict)"
            return result
        try:
            result["rows"] = self._run(k, meta, row)
        except (ResnetError, OSError) as e:  # e.g. a full disk: stop the run, in one line
            result["error"] = _message(e)
        return result

    def _run(self, k: int, meta: dict, row: dict) -> int:
        from resnet.runners.local import infer

        job, failed = self.job, meta["failed"]
        items = list(_items(job, meta["good"], row))
        outputs = {}
        if items:
            x = np.frombuffer(row["pixels"], np.float32).reshape(meta["shape"])
            dtype = np.dtype(job.output.dtype)
            outputs = {name: v.astype(dtype, copy=False) for name, v in
                       infer(self.net, job.layers, x, len(items), self.crops,
                             job.inputs.batch_size).items()}
        self.store.write(k, items, outputs, failed)
        return len(items)


def _items(job: PartJob, good: list, row: dict):
    keys = json.loads(row["keys"])
    labels = json.loads(row["labels"])
    lo = job.plan.bounds(int(row["part"]))[0]
    for i in good:
        label = labels[i - lo]
        yield Item(keys[i - lo], "", None if label is None else int(label))


@RUNNERS.register("ray")
class RayRunner:
    """Joins or starts a Ray cluster, sizes the actor pool and runs parts through it; the
    actors write part files, joined in list order at the end (runners/base.py: Runner)."""

    def __init__(self, config):
        if config.job != "extract":
            raise ResnetError(f"--runner={config.runner} runs --job=extract; {config.job} runs "
                              "on this machine (--runner=local)")
        self.name, self.debug = config.runner, config.debug
        self.model_settings, self.inputs = config.model_settings, config.input_settings
        self.engine, self.output = config.engine_settings, config.output_settings
        self.settings = config.ray_settings
        self.ray = None
        self.owned = False
        self.levels = {}
        self.auto = {}  # --precision=auto: node id -> what its actors chose (engine's record)

    def device(self) -> str:
        """Each actor picks its device on its own node; the driver runs no engine."""
        return "gpu" if self.engine.use_gpu else "cpu"

    def manifest(self, items, preprocessing, out_dir) -> dict:
        """The part sizes (outputs/parts.py); a resumed run keeps its earlier parts."""
        from resnet.outputs import parts
        from resnet.outputs.base import read_manifest

        inputs = self.inputs
        earlier = read_manifest(out_dir).get("part_rows") if self.output.resume else None
        return {"part_rows": earlier or parts.plan(
            len(items), crops_per_image(inputs.multi_crop), preprocessing.crop,
            inputs.batch_size).rows}

    def streaming(self, model, layers, device, items_count):
        raise ResnetError(f"--runner={self.name} runs --job=extract only")

    def extract(self, x: Extraction) -> Extracted:
        """Extract in part files, then join them into the format's files in list order;
        --resume redoes the parts not marked done."""
        from resnet.outputs import journal, parts
        from resnet.outputs.base import open_sink
        from resnet.runtime.engine import cache_root

        output, items, model = x.output, x.items, x.model
        part_plan = parts.PartPlan(len(items), x.manifest["part_rows"])
        store = parts.PartStore(x.out_dir, output.format, x.shapes, x.meta, part_plan)
        start = time.monotonic()
        written, failed, complete = 0, [], False
        with self.connected():  # the cluster, until the parts are done
            book = x.journal(cluster=self.cluster)
            finished = book.resuming and journal.progress(x.out_dir)["position"] == len(items)
            try:
                if not finished:
                    store.prepare()
                    done = store.done()
                    todo = [k for k in range(part_plan.count) if k not in done]
                    before = sum(part_plan.bounds(k)[1] - part_plan.bounds(k)[0] for k in done)
                    if done:
                        log.info("resuming %s: %d of %d parts (%d of %d list items) already "
                                 "done", x.out_dir, len(done), part_plan.count, before,
                                 len(items))
                    job = PartJob(self.model_settings, self.inputs,
                                  self.engine.replace(threads=self.pool.threads), output,
                                  model.preprocessing, list(x.layers), x.shapes, x.meta,
                                  os.path.abspath(x.out_dir), part_plan, model.sha256,
                                  dict(job_env(), RESNET_CACHE_DIR=os.path.abspath(cache_root())),
                                  self.pool.gpus > 0)
                    if todo:
                        written, _ = self.run_parts(items, todo, job, before)
                        book.manifest.update(chosen_precisions(self.auto))
            except BaseException:
                book.finish(False, discard_empty=False)  # parts already done stay for --resume
                raise
        try:
            if not finished:
                failed = [(items[i].key, why) for i, why in store.failures()]
                for key, reason in failed:
                    book.fail(key, reason)
                if not store.final:  # e.g. HDF5: one writer, the parts streamed in list order
                    with open_sink(output.format, x.out_dir, x.shapes, x.meta) as sink:
                        store.assemble(sink, items)
                book.commit(len(items), store.rows(), {})
            complete = True
        finally:
            book.finish(complete, discard_empty=False)
        if not finished:
            store.remove_stage()
        return Extracted(written, failed, book.state["failed"], book.state["rows"],
                         time.monotonic() - start)

    @contextlib.contextmanager
    def connected(self):
        """Ray joined or started and the actor pool sized, for the duration; a Ray this
        runner started is shut down at the end."""
        settings = self.settings
        self.ray = _ray()
        self.owned = False
        self.levels = {name: logging.getLogger(name).level for name in ("ray", "ray.data")}
        if not self.debug:
            for name in self.levels:  # its per-operator notices: --debug shows them
                logging.getLogger(name).setLevel(logging.ERROR)
        try:
            start = time.monotonic()
            self._connect()
            nodes = [n["Resources"] for n in self.ray.nodes() if n.get("Alive")]
            self.pool = size_pool(settings, self.engine, nodes)
            self.cluster = {
                "address": settings.ray_address or "local",
                "nodes": len(nodes),
                "cpus": sum(n.get("CPU", 0) for n in nodes),
                "gpus": sum(n.get("GPU", 0) for n in nodes),
                "actors": (f"{self.pool.min}" if self.pool.min == self.pool.max
                           else f"{self.pool.min}-{self.pool.max}"),
                "cpus_per_actor": self.pool.cpus, "gpus_per_actor": self.pool.gpus,
                "threads_per_actor": self.pool.threads,
            }
            log.info("Ray cluster %s: %d node(s), %g CPUs, %g GPUs; %s engine actor(s) of %g "
                     "CPU / %g GPU, %d engine thread(s) each (%.1f s to connect)",
                     self.cluster["address"], len(nodes), self.cluster["cpus"],
                     self.cluster["gpus"], self.cluster["actors"], self.pool.cpus,
                     self.pool.gpus, self.pool.threads, time.monotonic() - start)
            yield self
        finally:
            self.close()

    def _connect(self) -> None:
        ray, address = self.ray, self.settings.ray_address
        if ray.is_initialized():  # the caller's own session (the Python API): use it as is
            return
        options = dict(include_dashboard=False, log_to_driver=self.debug,
                       logging_level=logging.INFO if self.debug else logging.WARNING)
        try:
            if address:
                ray.init(address=address, **options)
            else:
                ray.init(num_cpus=usable_cores(), **options)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = address or "a local Ray"
            raise ResnetError(f"cannot start or join {where}: {_last_line(e)}") from None
        self.owned = True

    def run_parts(self, items, todo: list[int], job: PartJob, done_before: int) -> tuple:
        """Run parts `todo` through the pool; returns (rows written, images skipped)."""
        ray = self.ray
        ctx = ray.data.DataContext.get_current()  # read when a dataset is made: set first
        ctx.enable_progress_bars = self.debug
        ctx.print_on_execution_start = self.debug
        rows = []
        for k in todo:
            lo, hi = job.plan.bounds(k)
            part = items[lo:hi]
            rows.append({"part": k, "lo": lo, "paths": json.dumps([it.path for it in part]),
                         "keys": json.dumps([it.key for it in part]),
                         "labels": json.dumps([it.label for it in part])})
        ds = ray.data.from_items(rows, override_num_blocks=max(1, len(rows)))
        # `memory` also keeps the decode tasks out of the actors (equal resources would fuse
        # them into the actor, and decoding would stop overlapping the forward passes)
        ds = ds.map(decode_part, fn_kwargs={"job": job}, num_cpus=1,
                    memory=8 * PART_BYTES)
        ds = ds.map(PartWorker, fn_constructor_kwargs={"job": job},
                    compute=ray.data.ActorPoolStrategy(min_size=self.pool.min,
                                                       max_size=self.pool.max),
                    num_cpus=self.pool.cpus, num_gpus=self.pool.gpus or None)
        progress = Progress(len(items), "extract", initial=done_before)
        written = skipped = 0
        results = iter(ds.iter_rows())
        try:
            for result in results:
                if result["error"]:
                    raise ResnetError(result["error"])
                if result["auto"]:
                    self._note_choice(json.loads(result["auto"]))
                failed = json.loads(result["failed"])
                for why in failed:
                    log.warning("skipped %s", why)
                skipped += len(failed)
                written += int(result["rows"])
                progress.update(int(result["rows"]) + len(failed), failed=skipped)
        except ResnetError:
            raise
        except Exception as e:  # a task or actor raised: its own message, in one line
            cause = getattr(e, "cause", None) or e
            if isinstance(cause, ResnetError):
                raise ResnetError(str(cause)) from None
            raise ResnetError(f"the Ray job failed: {_last_line(cause)}") from None
        finally:
            # stops the streaming executor's threads before ray.shutdown(), which makes Ray's
            # own 'core worker has already been shutdown' line after our error rarer (Ray's
            # other background threads can still print it at exit)
            try:
                getattr(results, "close", lambda: None)()
            except Exception as e:  # never hides the run's own error
                log.debug("closing the Ray row iterator: %s", e)
            progress.close()
        return written, skipped

    def _note_choice(self, chosen: dict) -> None:
        """Logs each node's --precision=auto choice once, as its first part comes back."""
        from resnet.runtime.engine import describe_speeds

        node, record = chosen["node"], chosen["record"]
        if node not in self.auto:
            self.auto[node] = record
            log.info("--precision=auto chose %s on node %s (%s)", record["precision"],
                     node[:12], describe_speeds(record))

    def close(self) -> None:
        if self.owned and self.ray is not None and self.ray.is_initialized():
            self.ray.shutdown()
        self.owned = False
        for name, level in self.levels.items():  # a Python caller's logging as it was
            logging.getLogger(name).setLevel(level)


def chosen_precisions(by_node: dict) -> dict:
    """The manifest entries of a --precision=auto run on Ray (local.chosen_precision's, per
    node): "precision_chosen", the precision every node chose, or "mixed" when nodes chose
    differently, and "precision_measured", each node's measurement by node id; nothing
    otherwise. A resumed run records the choices of its own actors."""
    if not by_node:
        return {}
    chosen = {record["precision"] for record in by_node.values()}
    return {"precision_chosen": chosen.pop() if len(chosen) == 1 else "mixed",
            "precision_measured": by_node}


def _message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename:
        return f"{e.filename}: {e.strerror or e}"
    return str(e)


def _last_line(e: BaseException) -> str:
    """The error's type and the last line of its text (where Ray puts the cause)."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[-1] if text else ''}"


def job_env() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARD_ENV)}
