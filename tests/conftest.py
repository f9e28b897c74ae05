import contextlib
import os
import sys

import cv2
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".ci"))

import launch  # noqa: E402  (tests/, on the path above)
from resnet.modelio import params  # noqa: E402
from resnet.models import build  # noqa: E402

EXAMPLES = os.path.join(ROOT, "example")


#: the CPUs this test process was given, before _pin_worker shares them out
ALL_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


def _pin_worker():
    """Each pytest-xdist worker gets its own share of the CPUs (the runs it starts inherit it).

    Unpinned, two workers each running oneDNN with one thread per core oversubscribe the
    machine and the suite takes longer; pinned, the code under test sees a smaller machine
    (the `all_cpus` fixture gives a test the whole of it back).
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if worker and count and len(ALL_CPUS) >= int(count) > 1:
        os.sched_setaffinity(0, ALL_CPUS[int(worker[2:])::int(count)])


_pin_worker()


@contextlib.contextmanager
def every_cpu():
    """Every CPU of the machine for what runs inside (and the runs it starts), then the
    worker's share again."""
    if not ALL_CPUS:
        yield
        return
    share = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, ALL_CPUS)
    try:
        yield
    finally:
        os.sched_setaffinity(0, share)


@pytest.fixture(scope="module")
def all_cpus():
    """Every CPU of the machine for this module's runs (a Ray cluster sized by the cores it
    sees needs more than one worker's share)."""
    with every_cpu():
        yield


@pytest.fixture(scope="session", autouse=True)
def engine_cache(tmp_path_factory):
    """Compiled engines go to a scratch cache, never the user's ~/.cache (subprocesses too).

    Under pytest-xdist the workers share one cache (their base folders are siblings): an
    engine compiled by one is a hit for the other. Entries are renamed into place whole, so
    two workers compiling the same model at once is safe.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    path = os.path.join(str(base), "engine_cache")
    os.makedirs(path, exist_ok=True)
    old = os.environ.get("RESNET_CACHE_DIR")
    os.environ["RESNET_CACHE_DIR"] = path
    yield path
    if old is None:
        del os.environ["RESNET_CACHE_DIR"]
    else:
        os.environ["RESNET_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def model_factory(tmp_path_factory):
    """Seeded random v1 model directories, written once per depth through the real writer."""
    made = {}

    def make(layer_num, seed=1):
        if (layer_num, seed) not in made:
            d = tmp_path_factory.mktemp(f"resnet_{layer_num}_{seed}")
            spec = build(layer_num)
            params.save_model(str(d), spec, params.random_params(spec, seed))
            made[layer_num, seed] = str(d)
        return made[layer_num, seed]

    return make


@pytest.fixture(scope="session")
def model50(model_factory):
    return model_factory(50)


@pytest.fixture(scope="module")
def long_list(tmp_path_factory):
    """20 generated photos of varied sizes with two bad entries among them."""
    d = tmp_path_factory.mktemp("long")
    names = []
    for i in range(20):
        names.append(os.path.basename(write_jpeg(d / f"img{i:02d}.jpg", 120 + 7 * i, 200 - 3 * i, i)))
        if i in (5, 13):
            names.append(f"missing{i}.jpg")
    (d / "list.txt").write_text("\n".join(names) + "\n")
    return d / "list.txt"


def readme_blocks(heading: str, lang: str = "python", page: str = "README.md") -> list[str]:
    """The ```lang blocks under `heading` of `page` (README.md or a docs/ page), read by the
    reader CI uses for the test command."""
    from readme_block import blocks

    return blocks(os.path.join(ROOT, page), heading, lang)


def write_jpeg(path, h=180, w=240, seed=0):
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), (w, h))
    cv2.imwrite(str(path), base)
    return str(path)


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run `python -m resnet` as a user would; returns the CompletedProcess."""
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return launch.run([sys.executable, "-m", "resnet", *args], cwd=cwd or ROOT, env=full_env,
                      capture_output=True, text=True, timeout=timeout)
