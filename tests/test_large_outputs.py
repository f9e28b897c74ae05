"""Outputs sized for a million images: pooling in the graph, float16, compression, Parquet,
lazy reading, the disk check (issue 12)."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import EXAMPLES, ROOT, readme_blocks, run_cli
from reference import rel_err

import resnet
from resnet.inputs import imaging
from resnet.inputs.lists import Item
from resnet.modelio import params
from resnet.models.preprocessing import V1
from resnet.models import build
from resnet.outputs import FORMATS
from resnet.runtime import engine

# one worker: its ResNet-50 references (single and 10-crop) are computed once, not once per worker
pytestmark = pytest.mark.xdist_group("large_outputs")

NAMES = ["cat.jpg", "coffee.jpg", "astronaut.jpg", "rocket.jpg"]
GLOBAL = {"avg": np.mean, "max": np.max}


def _inputs(multi_crop):
    """Two photos, single crop; one photo's ten crops."""
    mean = V1
    return [imaging.preprocess(os.path.join(EXAMPLES, n), mean, multi_crop)
            for n in NAMES[:1 if multi_crop else 2]]


def _check_pooled(pooled, whole, pool, spec, crops):
    """pooled (images * crops -> averaged over crops) against whole (unpooled)."""
    assert sorted(pooled) == sorted(whole)
    for name in whole:
        want = whole[name]
        if len(spec[name].shape) == 3:
            want = GLOBAL[pool](want, axis=(2, 3))
        want = want.reshape(-1, crops, *want.shape[1:]).mean(axis=1)
        got = pooled[name].reshape(-1, crops, *pooled[name].shape[1:]).mean(axis=1)
        assert got.shape == want.shape == (len(want), *spec.out_shape(name, pool)), name
        assert rel_err(got, want) <= 1e-5, (name, pool)


#: ResNet-18's layers of the same kinds: the pooling is the same two ops after any depth and
#: block kind, and the smaller network leaves the suite's time to the pooling itself
LAYERS_18 = ["res4_1_branch2a_conv", "res5_2_branch2b_bn", "avgpool", "output"]


def test_pooling_in_the_graph_equals_pooling_after_dygraph(model_factory):
    net = resnet.load(model_factory(18))
    for multi_crop, crops in ((False, 1), (True, 10)):
        x = np.concatenate(_inputs(multi_crop))
        whole = net.run(x, LAYERS_18)
        for pool in ("avg", "max"):
            _check_pooled(net.run(x, LAYERS_18, pool), whole, pool, net.spec, crops)


def test_pooling_in_the_compiled_engine(model_factory):
    """One compiled engine per pool (each a compile), on ResNet-18 (the engine at other
    depths: test_engine.py)."""
    model = model_factory(18)
    spec = build(18)
    values = params.load_model(model, spec)
    sha = params.model_checksum(model, spec)
    net = resnet.load(model)
    for pool in ("avg", "max"):
        eng = engine.create("inference", spec, values, LAYERS_18, model, sha, "cpu", pool=pool)
        for multi_crop, crops in ((False, 1), (True, 10)):
            x = np.concatenate(_inputs(multi_crop))
            _check_pooled(eng.run(x, LAYERS_18), net.run(x, LAYERS_18), pool, spec, crops)


def _extract(model, data, out, *flags):
    return run_cli("--job=extract", f"--model={model}", f"--data={data}", f"--output_dir={out}",
                   "--use_gpu=0", "--batch_size=3", *flags)


@pytest.fixture(scope="module")
def photo_list(tmp_path_factory):
    d = tmp_path_factory.mktemp("list")
    (d / "l.list").write_text("".join(f"{os.path.join(EXAMPLES, n)} {i}\n"
                                      for i, n in enumerate(NAMES)))
    return d / "l.list"


#: the ten-crop test's photos: two (each photo's ten crops cost the dygraph reference 2.6 s)
TEN = 2


@pytest.fixture(scope="module")
def unpooled(model50):
    """The dygraph network's res5_3_branch2c_bn: every photo single crop, the first TEN
    photos' ten crops."""
    net = resnet.load(model50)
    mean = V1
    return {multi: [net.run(imaging.preprocess(os.path.join(EXAMPLES, n), mean, multi),
                            ["res5_3_branch2c_bn"])["res5_3_branch2c_bn"]
                    for n in (NAMES[:TEN] if multi else NAMES)]
            for multi in (False, True)}


def test_hdf5_float16_gzip_pooled_cli(model50, photo_list, unpooled, tmp_path):
    out = tmp_path / "o"
    photos = tmp_path / "ten.list"
    photos.write_text("".join(photo_list.read_text().splitlines(keepends=True)[:TEN]))
    r = _extract(model50, photos, out, "--output_layer=res5_3_branch2c_bn", "--pool=max",
                 "--multi_crop", "--dtype=float16", "--compression=gzip")
    assert r.returncode == 0, r.stderr
    assert "expected output: 4.1 KB per image, 8.2 KB for 2 images" in r.stderr
    assert "per image" in r.stderr.strip().splitlines()[-1]  # bytes actually written
    want = np.stack([u.max(axis=(2, 3)).mean(axis=0) for u in unpooled[True]])
    with h5py.File(out / "features.h5") as f:
        ds = f["res5_3_branch2c_bn"]
        assert ds.dtype == np.float16 and ds.shape == (TEN, 2048)
        assert ds.compression == "gzip" and ds.shuffle and ds.chunks == (256, 2048)
        assert f.attrs["pool"] == "max" and f.attrs["dtype"] == "float16"
        assert rel_err(ds[:].astype(np.float32), want) <= 1e-3  # float16: 11-bit mantissa
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["layers"] == {"res5_3_branch2c_bn": [2048]}
    assert (manifest["pool"], manifest["dtype"], manifest["compression"]) == \
        ("max", "float16", "gzip")
    r = _extract(model50, photos, out, "--output_layer=res5_3_branch2c_bn", "--pool=avg",
                 "--multi_crop", "--dtype=float16", "--compression=gzip", "--resume")
    assert r.returncode == 1 and "different pool" in r.stderr


def test_parquet_is_read_by_pyarrow_duckdb_and_pandas(model50, photo_list, unpooled, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow not installed: pip install "
                             "'.[parquet]'")
    out = tmp_path / "o"
    r = _extract(model50, photo_list, out, "--output_layer=res5_3_branch2c_bn,output",
                 "--pool=avg", "--dtype=float16", "--format=parquet")
    assert r.returncode == 0, r.stderr
    want = np.stack([u.mean(axis=(2, 3))[0] for u in unpooled[False]])
    folder = out / "features.parquet"
    assert sorted(os.listdir(folder)) == ["part-00000.parquet"]
    table = pq.read_table(folder)
    assert table.column_names == ["path", "label", "res5_3_branch2c_bn", "output"]
    assert str(table.schema.field("res5_3_branch2c_bn").type) == \
        "fixed_size_list<element: halffloat>[2048]"
    meta = json.loads(table.schema.metadata[b"resnet"])
    assert meta["layers"] == {"res5_3_branch2c_bn": [2048], "output": [1000]}
    assert meta["pool"] == "avg" and meta["dtype"] == "float16"
    assert table.column("path").to_pylist() == [os.path.join(EXAMPLES, n) for n in NAMES]
    assert table.column("label").to_pylist() == [0, 1, 2, 3]
    got = np.stack(table.column("res5_3_branch2c_bn").to_numpy(zero_copy_only=False))
    assert rel_err(got.astype(np.float32), want) <= 1e-3

    duckdb = pytest.importorskip("duckdb", reason="duckdb not installed (the test extra has it)")
    rows = duckdb.sql(f"SELECT path, label, len(res5_3_branch2c_bn) AS n FROM "
                      f"read_parquet('{folder}/*.parquet') ORDER BY label").fetchall()
    assert rows == [(os.path.join(EXAMPLES, n), i, 2048) for i, n in enumerate(NAMES)]
    pd = pytest.importorskip("pandas", reason="pandas not installed (the test extra has it)")
    frame = pd.read_parquet(folder)
    assert list(frame["label"]) == [0, 1, 2, 3]
    assert rel_err(np.stack(frame["res5_3_branch2c_bn"].to_numpy()).astype(np.float32),
                   want) <= 1e-3

    with resnet.load_features(str(out)) as feats:  # lazy, through the registry
        assert len(feats) == 4 and list(feats.keys()) == ["res5_3_branch2c_bn", "output"]
        assert feats["output"].shape == (4, 1000) and feats["output"].dtype == np.float16
        np.testing.assert_array_equal(feats["res5_3_branch2c_bn"][2], got[2])
        np.testing.assert_array_equal(np.asarray(feats["res5_3_branch2c_bn"]), got)
        assert feats.labels.tolist() == [0, 1, 2, 3]


def _write_rows(fmt, folder, rows, width, parts_every, dtype="float16"):
    """`rows` rows of `width` random values written straight through a format's sink."""
    os.makedirs(folder, exist_ok=True)
    sink_type = FORMATS[fmt]
    meta = {"dtype": dtype, "compression": "lzf", "key_bytes": 60}
    rng = np.random.default_rng(0)
    with sink_type(folder, {"feat": (width,)}, meta) as sink:
        for start in range(0, rows, 500):
            n = min(500, rows - start)
            items = [Item(f"/data/imagenet/train/n01440764/n01440764_{start + i:05d}.JPEG",
                          "", (start + i) % 1000) for i in range(n)]
            sink.write(items, {"feat": rng.standard_normal((n, width), np.float32)})
            if (start // 500) % parts_every == parts_every - 1:
                sink.flush()
    with open(os.path.join(folder, "manifest.json"), "w") as f:
        json.dump({"layers": {"feat": [width]}, "dtype": dtype}, f)


def test_parquet_pooled_float16_is_under_4_5_kb_per_image(tmp_path):
    pytest.importorskip("pyarrow", reason="pyarrow not installed: pip install '.[parquet]'")
    _write_rows("parquet", str(tmp_path), 3000, 2048, parts_every=2)  # a part per 1000 rows
    folder = tmp_path / "features.parquet"
    size = sum(os.path.getsize(folder / n) for n in os.listdir(folder))
    assert len(os.listdir(folder)) == 3
    assert size / 3000 <= 4500, size / 3000  # random values: the incompressible worst case


@pytest.mark.parametrize("fmt", ["hdf5", "parquet"])
def test_reading_one_row_does_not_load_the_file(fmt, tmp_path):
    if fmt == "parquet":
        pytest.importorskip("pyarrow", reason="pyarrow not installed: pip install '.[parquet]'")
    _write_rows(fmt, str(tmp_path), 40000, 2048, parts_every=20)  # ~164 MB of float16
    size = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(tmp_path) for n in ns)
    assert size > 150e6
    # memory: RSS for HDF5 (h5py reads one ~1 MB chunk); Arrow's own allocation count for
    # Parquet (its allocator reserves far more than it uses, which would hide the point)
    used = ("int(open('/proc/self/statm').read().split()[1]) * 4096" if fmt == "hdf5" else
            "__import__('pyarrow').total_allocated_bytes()")
    code = ("import resnet\n"
            f"feats = resnet.load_features({str(tmp_path)!r})\n"
            f"before = {used}\n"
            "row = feats['feat'][31234]\n"
            f"print({used} - before, row.shape, len(feats))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr
    grown, shape, rows = r.stdout.split(" ", 1)[0], r.stdout.split("(", 1)[1].split(")")[0], \
        r.stdout.split()[-1]
    assert shape.strip(",") == "2048" and rows == "40000"
    assert int(grown) < 30e6, f"reading one row took {int(grown) / 1e6:.0f} MB"


def test_disk_check_refuses_before_anything_runs(model50, monkeypatch, tmp_path):
    from resnet.outputs import space

    monkeypatch.setattr(space, "free_bytes", lambda folder: 1000)
    out = tmp_path / "o"
    with pytest.raises(resnet.ResnetError, match=r"1.0 KB free, but the output needs about "
                                                 r"802.8 KB.*--no_space_check"):
        resnet.extract(model50, os.path.join(EXAMPLES, "cat.jpg"), output_dir=str(out),
                       engine="dygraph", use_gpu=False)
    assert not out.exists()
    summary = resnet.extract(model50, os.path.join(EXAMPLES, "cat.jpg"), output_dir=str(out),
                             engine="dygraph", use_gpu=False, no_space_check=True,
                             layers=["pool1"], pool="avg")
    assert summary.done == 1


def test_readme_large_dumps_examples_run(model50, photo_list, tmp_path):
    """README's pandas example, and its FAISS one where faiss is installed."""
    pytest.importorskip("pandas", reason="pandas not installed (the test extra has it)")
    pytest.importorskip("pyarrow", reason="pyarrow not installed: pip install '.[parquet]'")
    r = _extract(model50, photo_list, tmp_path / "output_pooled",
                 "--output_layer=res5_3_branch2c_bn", "--pool=avg", "--dtype=float16",
                 "--format=parquet")
    assert r.returncode == 0, r.stderr
    pandas_block, faiss_block = readme_blocks("## Large dumps", page="docs/outputs.md")
    code = pandas_block
    try:
        import faiss  # noqa: F401
        code += faiss_block
    except ImportError:
        pass
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"{os.path.join(EXAMPLES, 'cat.jpg')} (4, 2048)"
    if code != pandas_block:
        assert lines[1].startswith("[0 ")  # an image is its own nearest neighbour


def test_overwrite_clears_every_format_and_merge_checks_dtype(model_factory, photo_list, tmp_path):
    model = model_factory(18)  # the files, not the network, are under test
    pytest.importorskip("pyarrow", reason="pyarrow not installed: pip install '.[parquet]'")
    out = tmp_path / "o"
    fast = ["--output_layer=pool1", "--pool=avg", "--engine=dygraph"]
    assert _extract(model, photo_list, out, *fast).returncode == 0
    r = _extract(model, photo_list, out, *fast, "--format=parquet")
    assert r.returncode == 1 and "already holds output (features.h5, manifest.json, " in r.stderr
    r = _extract(model, photo_list, out, *fast, "--format=parquet", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == ["features.parquet", "manifest.json", "progress.json"]
    assert resnet.load_features(str(out))["pool1"].shape == (4, 64)

    sharded = tmp_path / "s"
    for i, dtype in ((1, "float16"), (2, "float32")):
        r = _extract(model, photo_list, sharded, *fast, f"--shard={i}/2", f"--dtype={dtype}")
        assert r.returncode == 0, r.stderr
    r = run_cli("--job=merge", f"--output_dir={sharded}")
    assert r.returncode == 1
    assert r.stderr.strip().endswith("shard-2-of-2: made with a different dtype than shard 1")
