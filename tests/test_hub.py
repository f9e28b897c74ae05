"""Pretrained weights by name: download, resume, verify, convert, install, reuse.

No network: a loopback HTTP server this module starts (weights_server.py, stopped by its
pid) serves fixture checkpoints at the publishers' paths through RESNET_WEIGHTS_MIRROR.
The fixtures are seeded paddle.vision ResNet-18s written in torchvision's .pth layout and a
v1-zoo-style tar.gz; entries for them are added to the registry for the in-process tests,
and the real entries are used where the outcome is an error (a checksum that cannot match).
"""
import hashlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tarfile
from dataclasses import replace

import numpy as np
import pytest
from conftest import EXAMPLES, run_cli
from test_convert import _paddle_vision, torchvision_state, write_pth

import resnet
from resnet.errors import ResnetError
from resnet.hub import WEIGHTS, install
from resnet.hub.entry import Checksum, Download, Weights
from resnet.modelio import mean as mean_io, params as params_io
from resnet.models import build_arch
from resnet.models.preprocessing import V1

HERE = os.path.dirname(os.path.abspath(__file__))
TV_HOST = "download.pytorch.org/models"
V1_HOST = "paddlepaddle.bj.bcebos.com/model_zoo/imagenet"


def _sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The served folder: a torchvision-layout ResNet-18 .pth named with its own sha256
    prefix (as torchvision names them), a v1 zoo resnet_18.tar.gz and mean_meta_224.tar.gz."""
    root = tmp_path_factory.mktemp("served")
    os.makedirs(root / TV_HOST)
    tmp = root / "tmp.pth"
    state = {k: v.numpy() for k, v in _paddle_vision(18).state_dict().items()}
    write_pth(str(tmp), torchvision_state(state))
    prefix = _sha256(tmp)[:8]
    pth = root / TV_HOST / f"resnet18-{prefix}.pth"
    os.rename(tmp, pth)
    os.makedirs(root / V1_HOST)
    v1 = tmp_path_factory.mktemp("v1")
    spec = build_arch("resnet18_v1")
    params_io.save_model(str(v1 / "resnet_18"), spec, params_io.random_params(spec, 3))
    with tarfile.open(root / V1_HOST / "resnet_18.tar.gz", "w:gz", compresslevel=1) as tar:
        tar.add(v1 / "resnet_18", arcname="resnet_18")
    mean = np.random.default_rng(0).uniform(90, 130, (3, 224, 224)).astype(np.float32)
    os.makedirs(v1 / "mean_meta_224")
    mean_io.write_v1_mean(str(v1 / "mean_meta_224" / "mean.meta"), mean)
    with tarfile.open(root / V1_HOST / "mean_meta_224.tar.gz", "w:gz") as tar:
        tar.add(v1 / "mean_meta_224", arcname="mean_meta_224")
    return {"root": str(root), "pth": str(pth), "prefix": prefix, "v1": str(v1 / "resnet_18"),
            "mean": str(v1 / "mean_meta_224" / "mean.meta")}


class Server:
    def __init__(self, root, *args):
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "weights_server.py"),
                                      root, *args], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self):
        import urllib.request

        with urllib.request.urlopen(self.url + "/_stats", timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def serve(files, monkeypatch, tmp_path):
    """Start a server over the fixture folder (extra args: --cut/--html), point the mirror at
    it and the cache into tmp_path; stopped by its pid afterwards."""
    started = []

    def start(*args):
        server = Server(files["root"], *args)
        started.append(server)
        monkeypatch.setenv("RESNET_WEIGHTS_MIRROR", server.url)
        return server

    monkeypatch.setenv("RESNET_WEIGHTS_DIR", str(tmp_path / "cache"))
    yield start
    for server in started:
        server.stop()


def _register(monkeypatch, entry):
    WEIGHTS.names()  # load the real entries first
    monkeypatch.setitem(WEIGHTS._entries, entry.name, entry)
    return entry


def _tv_entry(files, prefix=None, name="resnet18.test_tv"):
    url = f"https://{TV_HOST}/{os.path.basename(files['pth'])}"
    return Weights(name, "resnet18", "torchvision",
                   (Download((url,), Checksum("sha256-prefix", prefix or files["prefix"])),),
                   "test publisher", "bsd-3-clause", 69.8, 89.1)


def _v1_entry(files):
    return Weights("resnet18_v1.test_v1", "resnet18_v1", "paddle_v1",
                   (Download((f"https://{V1_HOST}/resnet_18.tar.gz",), None, member="resnet_18"),
                    Download((f"https://{V1_HOST}/mean_meta_224.tar.gz",), None, role="mean",
                             member="mean_meta_224/mean.meta")),
                   "test publisher", "not stated", recipe=V1)


def _cache_files(tmp_path):
    """Every file left in the cache, but the lock files a run removes as it ends."""
    root = tmp_path / "cache"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_download_verify_convert_extract_then_cached(files, serve, monkeypatch, tmp_path):
    server = serve()
    entry = _register(monkeypatch, _tv_entry(files))
    out = tmp_path / "out1"
    summary = resnet.extract(model=entry.name, data=os.path.join(EXAMPLES, "test.list"),
                             layers=["res5_2_branch2b_bn", "output"], output_dir=str(out))
    assert summary.done == 4
    folder = install.model_dir(entry.name)
    card = json.load(open(os.path.join(folder, "model.json")))
    assert card["arch"] == "resnet18" and card["source"]["registry"] == entry.name
    assert card["source"]["sha256"] == _sha256(files["pth"])
    assert card["source"]["checksum"]["value"] == files["prefix"]
    assert card["source"]["top1"] == 69.8
    # the same bytes as converting the file by hand
    ref = tmp_path / "by_hand"
    assert run_cli("--job=convert", "--from=torchvision", f"--input={files['pth']}",
                   f"--model={ref}").returncode == 0
    spec = build_arch("resnet18")
    a, b = params_io.load_model(folder, spec), params_io.load_model(str(ref), spec)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    served = server.stats()
    assert [r[0] for r in served["requests"]] == [f"{TV_HOST}/{os.path.basename(files['pth'])}"]
    assert _cache_files(tmp_path) == sorted(
        f"models/{entry.name}/{n}" for n in os.listdir(folder))  # downloads removed
    # a second run: the cache, no request
    summary = resnet.extract(model=entry.name, data=os.path.join(EXAMPLES, "test.list"),
                             layers=["output"], output_dir=str(tmp_path / "out2"))
    assert summary.done == 4
    assert server.stats()["requests"] == served["requests"]
    with resnet.load_features(str(out)) as f1, resnet.load_features(str(tmp_path / "out2")) as f2:
        np.testing.assert_array_equal(np.asarray(f1["output"]), np.asarray(f2["output"]))


def test_cut_download_is_resumed_with_range(files, serve, monkeypatch):
    rel = f"{TV_HOST}/{os.path.basename(files['pth'])}"
    size = os.path.getsize(files["pth"])
    server = serve("--cut", f"{rel}={size // 2}")
    entry = _register(monkeypatch, _tv_entry(files))
    folder = install.ensure(entry.name)
    requests = server.stats()["requests"]
    assert requests == [[rel, None], [rel, f"bytes={size // 2}-"]]
    assert server.stats()["bytes"] == size  # nothing sent twice
    assert install.installed(entry.name) and os.path.isdir(folder)


@pytest.mark.parametrize("case", ["checksum", "truncated", "html", "gone"])
def test_bad_downloads_fail_in_one_line_and_leave_nothing(case, files, serve, monkeypatch,
                                                          tmp_path):
    rel = f"{TV_HOST}/{os.path.basename(files['pth'])}"
    size = os.path.getsize(files["pth"])
    entry = _tv_entry(files, prefix="0123abcd" if case == "checksum" else None)
    if case == "truncated":  # the publisher states the size; the server's file is shorter
        entry = Weights(entry.name, entry.arch, entry.source_format,
                        (Download(entry.weights.urls, entry.weights.checksum, size + 1000),),
                        entry.publisher, entry.license)
    _register(monkeypatch, entry)
    if case == "gone":
        server = serve()
        server.stop()
    else:
        serve(*(["--html", rel] if case == "html" else []))
    with pytest.raises(ResnetError) as e:
        install.ensure(entry.name)
    text = str(e.value)
    assert "\n" not in text and entry.name in text
    expect = {"checksum": f"checksum mismatch: test publisher states sha256-prefix 0123abcd, "
                          f"the file has {_sha256(files['pth'])}",
              "truncated": f"{size} bytes, but test publisher states {size + 1000}",
              "html": "sent a web page, not the file",
              "gone": "RESNET_WEIGHTS_MIRROR=URL-or-folder"}[case]
    assert expect in text
    if case == "gone":
        assert "--weights_file=PATH" in text and "127.0.0.1" in text
    assert _cache_files(tmp_path) == []


def test_real_entry_checksum_mismatch_on_the_cli(files, serve, tmp_path):
    """The registry's torchvision ResNet-18 (sha256 prefix f37072fd) served with other bytes:
    exit 1, one line with both sums, nothing in the cache."""
    root = tmp_path / "served"
    os.makedirs(root / TV_HOST)
    os.link(files["pth"], root / TV_HOST / "resnet18-f37072fd.pth")
    server = Server(str(root))
    try:
        env = {"RESNET_WEIGHTS_MIRROR": server.url,
               "RESNET_WEIGHTS_DIR": str(tmp_path / "cache")}
        r = run_cli("--job=download", "--model=resnet18.tv_in1k", env=env)
    finally:
        server.stop()
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-1] == (f"resnet: error: resnet18.tv_in1k: checksum mismatch: torchvision "
                         f"states sha256-prefix f37072fd, the file has {_sha256(files['pth'])}; "
                         "it was deleted")
    assert _cache_files(tmp_path) == []


def _ensure_in_child(entry, queue):
    """A fresh process (spawned: a fork of a worker where JAX has started its threads may
    deadlock) that registers the test entry itself, as the parent did, and installs it."""
    try:
        WEIGHTS.names()
        WEIGHTS._entries[entry.name] = entry
        queue.put(install.ensure(entry.name))
    except Exception as e:  # noqa: BLE001 - reported to the parent
        queue.put(f"error: {e}")


def test_two_runs_at_once_download_once(files, serve, monkeypatch):
    server = serve()
    entry = _register(monkeypatch, _tv_entry(files))
    ctx = multiprocessing.get_context("spawn")  # the mirror setting reaches it in os.environ
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ensure_in_child, args=(entry, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert results == [install.model_dir(entry.name)] * 2
    assert len(server.stats()["requests"]) == 1
    assert server.stats()["bytes"] == os.path.getsize(files["pth"])


def test_v1_zoo_archive_with_its_mean_image(files, serve, monkeypatch, tmp_path):
    """A v1 zoo entry: the tar.gz's folder and the mean image, recorded on first download
    (no published checksum); features equal the unpacked folder run with --mean."""
    serve()
    entry = _register(monkeypatch, _v1_entry(files))
    folder = install.ensure(entry.name)
    card = json.load(open(os.path.join(folder, "model.json")))
    assert card["preprocessing"]["mean_file"] == "mean.meta"
    sums = json.load(open(tmp_path / "cache" / "sha256.json"))
    assert set(sums) == {d.urls[0] for d in entry.files}
    data = os.path.join(EXAMPLES, "test.list")
    got = resnet.extract(model=entry.name, data=data, layers=["output"],
                         output_dir=str(tmp_path / "a"))
    want = resnet.extract(model=files["v1"], data=data, layers=["output"], arch="resnet18_v1",
                          mean=files["mean"], output_dir=str(tmp_path / "b"))
    assert got.done == want.done == 4
    with resnet.load_features(str(tmp_path / "a")) as a, \
            resnet.load_features(str(tmp_path / "b")) as b:
        np.testing.assert_array_equal(np.asarray(a["output"]), np.asarray(b["output"]))
    # a later download of the same files must match the recorded sums
    install_dir = tmp_path / "cache" / "models" / entry.name
    import shutil

    shutil.rmtree(install_dir)
    with tarfile.open(os.path.join(files["root"], V1_HOST, "resnet_18.tar.gz")) as tar:
        assert tar.getnames()  # the served archive is intact
    sums[entry.files[0].urls[0]] = "0" * 64
    (tmp_path / "cache" / "sha256.json").write_text(json.dumps(sums))
    with pytest.raises(ResnetError, match="recorded sha256 0{64} on the first download"):
        install.ensure(entry.name)


def test_weights_file_fetched_by_hand(files, monkeypatch, tmp_path):
    """--weights_file: no request at all (no mirror, no network), the entry's checksum still
    checked."""
    monkeypatch.setenv("RESNET_WEIGHTS_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RESNET_WEIGHTS_MIRROR", str(tmp_path / "nowhere"))
    entry = _register(monkeypatch, _tv_entry(files))
    folder = install.ensure(entry.name, weights_file=files["pth"])
    assert install.installed(entry.name) and os.path.isdir(folder)
    bad = _register(monkeypatch, _tv_entry(files, prefix="0123abcd", name="resnet18.test_bad"))
    with pytest.raises(ResnetError, match="checksum mismatch"):
        install.ensure(bad.name, weights_file=files["pth"])
    assert not os.path.exists(install.model_dir(bad.name))


def test_unknown_name_and_folder_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_WEIGHTS_DIR", str(tmp_path / "cache"))
    with pytest.raises(ResnetError, match=r"unknown pretrained weights 'resnet50\.tv_in1kk' "
                                          r"\(did you mean: resnet50\.tv_in1k"):
        install.entry("resnet50.tv_in1kk")
    folder = tmp_path / "resnet50.tv_in1k"  # a folder of that name wins over the registry
    folder.mkdir()
    assert install.resolve(str(folder)) == str(folder)
    assert install.resolve("model/resnet_50") == "model/resnet_50"


def test_malformed_entries_are_refused_naming_the_fault():
    from resnet.hub.entry import add, problems

    good = WEIGHTS["resnet18.tv_in1k"]
    assert problems(good) == []
    cases = {
        "name must be ARCH.TAG": replace(good, name="resnet34.tv_in1k"),
        "must be https URLs": replace(good, files=(replace(good.weights, urls=(
            "http://download.pytorch.org/models/resnet18-f37072fd.pth",)),)),
        "md5 '0123' is not 32 lowercase hex digits": replace(good, files=(replace(
            good.weights, checksum=Checksum("md5", "0123", "x")),)),
        "a sha256-prefix is the file name's last part": replace(good, files=(replace(
            good.weights, checksum=Checksum("sha256-prefix", "abcdef01", "x")),)),
        "unknown checksum kind 'crc32'": replace(good, files=(replace(
            good.weights, checksum=Checksum("crc32", "abcdef01", "x")),)),
        "say where the publisher states the checksum": replace(good, files=(replace(
            good.weights, checksum=Checksum("sha256-prefix", "f37072fd")),)),
        "no preprocessing recipe": replace(good, recipe=None),
        "publisher and license must be stated": replace(good, license=""),
    }
    for fault, entry in cases.items():
        with pytest.raises(ValueError, match=f"weights entry {re.escape(entry.name)}: .*"
                                             f"{re.escape(fault)}"):
            add(entry)


@pytest.mark.parametrize("name", WEIGHTS.names())
def test_every_entry_names_an_importer_that_can_name_its_architecture(name):
    """The entry's importer has a key naming style that describes every parameter of the
    entry's architecture (what `convert --arch` tries), so a checkpoint of that layout can
    convert; the v1 zoo's archives hold the v1 files themselves."""
    from resnet.hub.entry import ARCHIVE_FORMATS
    from resnet.importers import IMPORTERS
    from resnet.importers.base import STYLES, styles_of

    entry = WEIGHTS[name]
    spec = build_arch(entry.arch)
    if entry.source_format in ARCHIVE_FORMATS:
        assert spec.family.name == "resnet" and entry.arch.endswith("_v1")
        return
    assert entry.source_format in IMPORTERS  # an importer is registered for the format
    styles = styles_of(entry.source_format)
    assert any(STYLES[s].describes(spec) for s in styles), (entry.source_format, entry.arch)
