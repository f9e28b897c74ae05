"""One module per `--job`, each registered in JOBS with a `run(config)` that takes a RunConfig
(never argparse's Namespace). The CLI and the Python API (`resnet.extract`, `resnet.predict`)
both come through here.

Job modules import the heavy rooms (runtime, hence Paddle) inside `run`, so listing the jobs
(the CLI's choices) stays light. May import every other room; only the CLI and the API import
jobs.
"""
from resnet.registry import Registry

#: job name -> run(config) returning an exit code or a Summary; `run.needs`: required flags
JOBS = Registry("job", __name__)


def missing(run, settings) -> str | None:
    """The first setting `run` needs that `settings` (flags or a RunConfig) leaves empty."""
    return next((flag for flag in run.needs if not getattr(settings, flag)), None)


def job(name: str, needs: tuple = ()):
    """Register `run(config)` as --job=name; `needs` names the flags it cannot run without."""
    def add(fn):
        fn.needs = tuple(needs)
        return JOBS.register(name)(fn)
    return add
