"""One module per `--job`, each registered in JOBS with a `run(config)` that takes a RunConfig
(never argparse's Namespace). The CLI and the Python API (`resnet.extract`, `resnet.predict`)
both come through here.

Job modules import the heavy rooms (runtime, hence Paddle) inside `run`, so listing the jobs
(the CLI's choices) stays light. May import every room below (resnet/__init__.py gives the
order); only the CLI and the API import jobs. A job never asks which runner it has: the
runner's protocol (runners/base.py) covers what differs.
"""
from resnet.registry import Registry

#: job name -> run(config) returning an exit code or a Summary; `run.needs`: required flags,
#: `run.reads`: every flag it reads
JOBS = Registry("job", __name__)
#: settings every job takes
COMMON = ("job", "debug")


def missing(run, settings) -> str | None:
    """The first setting `run` needs that `settings` (flags or a RunConfig) leaves empty."""
    return next((flag for flag in run.needs if not getattr(settings, flag)), None)


def foreign(run, given) -> list[str]:
    """The settings in `given` (names of RunConfig fields) that `run` never reads: a flag
    the job would silently ignore is refused instead."""
    return [name for name in given if name not in run.reads]


def readers(name: str) -> list[str]:
    """The jobs that read setting `name`, for the message refusing it elsewhere."""
    return [job_name for job_name, run in JOBS.items() if name in run.reads]


def job(name: str, needs: tuple = (), reads: tuple = (), named_weights: bool = False):
    """Register `run(config)` as --job=name; `needs` names the flags it cannot run without,
    `reads` every other flag it reads (RunConfig field names; COMMON ones go without saying).
    With `named_weights`, --model may name pretrained weights (resnet50.tv_in1k): the job
    gets the cache folder they are installed in (with --weights_file: from that file)."""
    def add(fn):
        run = _resolving(fn) if named_weights else fn
        run.needs = tuple(needs)
        run.reads = frozenset((*needs, *reads, *COMMON,
                               *(("weights_file",) if named_weights else ())))
        return JOBS.register(name)(run)
    return add


def _resolving(fn):
    import dataclasses
    import functools

    @functools.wraps(fn)
    def run(config, *args, **kw):
        from resnet.hub.install import resolve

        model = resolve(config.model, config.weights_file)
        if model != config.model:
            config = dataclasses.replace(config, model=model, weights_file=None)
        return fn(config, *args, **kw)
    return run
