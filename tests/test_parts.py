"""Part files and the Ray actor pool's sizing, without a cluster: what makes --runner=ray
exactly once (parts rewritten whole, done-markers) and never a hang (CPUs left to decode)."""
import os

import numpy as np
import pytest
from conftest import run_cli

from resnet.config import RunConfig, parse_actors
from resnet.errors import ResnetError
from resnet.inputs.lists import Item
from resnet.outputs import parts
from resnet.outputs.base import open_sink
from resnet.runners.ray_data import size_pool

pytest.importorskip("pyarrow")
LAYERS = {"a": (4, 2, 2), "b": (3,)}


def test_plan_cuts_whole_batches_and_covers_the_list_once(monkeypatch):
    monkeypatch.delenv(parts.ROWS_ENV, raising=False)
    plan = parts.plan(1000, 1, 224, 16)
    assert plan.rows == 32 and plan.count == 32  # 24 MB of 224x224 crops, in batches of 16
    covered = [i for k in range(plan.count) for i in range(*plan.bounds(k))]
    assert covered == list(range(1000))
    assert parts.plan(10, 10, 224, 16).rows == 4  # 10-crop: 6 MB an image
    monkeypatch.setenv(parts.ROWS_ENV, "7")
    assert parts.plan(1000, 1, 224, 16).rows == 7
    monkeypatch.setenv(parts.ROWS_ENV, "0")
    with pytest.raises(ResnetError, match="RESNET_PART_ROWS"):
        parts.plan(10, 1, 224, 16)


def _outputs(lo, hi):
    rng = np.random.default_rng(lo)
    return {name: rng.standard_normal((hi - lo, *shape)).astype(np.float32)
            for name, shape in LAYERS.items()}


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
def test_parts_rewritten_whole_then_joined_in_list_order(tmp_path, fmt):
    """Parts written out of order, one twice (a retried task) and one with a bad image,
    join into exactly the rows of a sequential run."""
    items = [Item(f"img{i}.jpg", "", i % 3) for i in range(10)]
    plan = parts.PartPlan(10, 4)
    meta = {"dtype": "float32", "format": fmt, "key_bytes": 9}
    store = parts.PartStore(str(tmp_path), fmt, LAYERS, meta, plan)
    store.prepare()
    values = _outputs(0, 10)
    bad = 5
    for k in (2, 0, 1, 0):  # part 0 twice: the same file, rewritten whole
        lo, hi = plan.bounds(k)
        good = [i for i in range(lo, hi) if i != bad]
        store.write(k, [items[i] for i in good], {n: v[good] for n, v in values.items()},
                    [[bad, "img5.jpg: not an image"]] if lo <= bad < hi else [])
    assert store.done() == {0, 1, 2}
    assert store.rows() == 9 and store.failures() == [(5, "img5.jpg: not an image")]
    if not store.final:
        with open_sink(fmt, str(tmp_path), LAYERS, meta) as sink:
            store.assemble(sink, items)
    import resnet

    keep = [i for i in range(10) if i != bad]
    with resnet.load_features(str(tmp_path)) as got:
        assert list(got.images) == [f"img{i}.jpg" for i in keep]
        np.testing.assert_array_equal(got.labels, [i % 3 for i in keep])
        for name in LAYERS:
            np.testing.assert_array_equal(np.asarray(got[name]), values[name][keep])


def test_a_part_without_its_marker_is_not_done(tmp_path):
    plan = parts.PartPlan(8, 4)
    store = parts.PartStore(str(tmp_path), "parquet", LAYERS, {"dtype": "float32"}, plan)
    store.prepare()
    items = [Item(f"i{i}", "", None) for i in range(4)]
    store.write(0, items, _outputs(0, 4), [])
    os.remove(store.marker_path(0))  # killed between the part and its marker
    open(os.path.join(store.data_dir, ".part-00001.parquet.tmp123"), "wb").close()
    assert store.done() == set()
    store.prepare()  # a killed worker's temporary file goes; the finished part is redone
    assert sorted(os.listdir(store.data_dir)) == ["part-00000.parquet"]


def node(cpus, gpus=0):
    return {"CPU": cpus, "GPU": gpus}


def pool_of(config, nodes):
    return size_pool(config.ray_settings, config.engine_settings, nodes)


def test_pool_defaults_leave_a_cpu_for_decoding():
    pool = pool_of(RunConfig(), [node(2)])
    assert (pool.min, pool.max, pool.cpus, pool.gpus, pool.threads) == (1, 1, 1.0, 0.0, 2)
    pool = pool_of(RunConfig(), [node(16), node(16)])
    assert pool.max == 31 and pool.threads == 1
    pool = pool_of(RunConfig(use_gpu=True), [node(8, 4), node(8, 4)])
    assert (pool.max, pool.gpus) == (8, 1.0)  # one actor per GPU
    assert pool_of(RunConfig(actors=(2, 4), threads=3), [node(8)]) == \
        type(pool)(2, 4, 1.0, 0.0, 3)


@pytest.mark.parametrize("options, nodes, message", [
    ({"actors": (2, 2)}, [node(2)], "leave 0 of the cluster's 2 CPUs for decoding"),
    ({"actors": (1, 3), "cpus_per_actor": 2}, [node(4), node(2)], "leave 0 of the cluster.s 6 CPUs"),
    ({"cpus_per_actor": 3}, [node(2), node(2), node(2)], "more than any node has"),
    ({"use_gpu": True, "actors": (3, 3)}, [node(8, 2)], "need 3 GPUs"),
])
def test_pools_that_would_hang_are_refused(options, nodes, message):
    with pytest.raises(ResnetError, match=message):
        pool_of(RunConfig(**options), nodes)


def test_actor_flag_forms():
    assert parse_actors("3") == (3, 3) and parse_actors("2-8") == (2, 8)
    for bad in ("0", "4-2", "x", "1-"):
        with pytest.raises(ResnetError):
            parse_actors(bad)
    assert RunConfig(actors="1-4").actors == (1, 4)
    proc = run_cli("--job=extract", "--model=m", "--data=d", "--runner=ray", "--actors=0")
    assert proc.returncode == 2 and "--actors" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_predict_refuses_the_ray_runner(model_factory, tmp_path):
    from conftest import write_jpeg

    image = write_jpeg(tmp_path / "a.jpg")
    proc = run_cli("--job=predict", f"--model={model_factory(18)}", f"--data={image}",
                   "--runner=ray")
    assert proc.returncode == 1
    assert "--runner=ray runs --job=extract" in proc.stderr.strip().splitlines()[-1]
