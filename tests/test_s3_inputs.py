"""--data in S3: prefixes, single objects and lists with s3:// lines, against moto's server."""
import json
import os

import numpy as np
import pytest
from conftest import run_cli, write_jpeg

pytest.importorskip("pyarrow.fs")
boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

import resnet  # noqa: E402
from resnet.errors import ImageError, ResnetError  # noqa: E402
from resnet.inputs import remote  # noqa: E402
from resnet.inputs.lists import collect, read_list  # noqa: E402

BUCKET = "resnet-test"
# a top-level image sorts after a folder by key ("p/b.jpg" > "p/a/...") yet comes first when a
# local copy is walked: the order must be the walk's
TREE = {"p/b.jpg": 1, "p/a/x.jpg": 2, "p/a/y.png": 3, "p/c/z.jpg": 4}
SKIPPED = {"p/.hidden/h.jpg": 5, "p/a/.h.jpg": 6, "p/notes.txt": None, "p/a/readme": None}


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto's S3 on loopback, a bucket holding TREE and SKIPPED; the local copy's folder."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        local = tmp_path_factory.mktemp("s3_local")
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"],
                              aws_access_key_id="testing", aws_secret_access_key="testing",
                              region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        for key, seed in {**TREE, **SKIPPED}.items():
            path = local / key
            path.parent.mkdir(parents=True, exist_ok=True)
            if seed is None:
                path.write_text("not an image")
            elif key.endswith(".png"):
                import cv2
                cv2.imwrite(str(path), cv2.imread(write_jpeg(local / "tmp.jpg", seed=seed)))
            else:
                write_jpeg(path, 100 + 10 * seed, 140, seed)
            client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
        os.remove(local / "tmp.jpg")
        for key in SKIPPED:  # the local copy holds only what the listing keeps
            os.remove(local / key)
        client.put_object(Bucket=BUCKET, Key="empty/notes.txt", Body=b"x")
        yield env, local
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3, monkeypatch):
    env, local = s3
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    return env, local


def test_is_uri():
    assert remote.is_uri("s3://b/k") and remote.is_uri("gs://b/k")
    assert not any(map(remote.is_uri, ["C://x", "C:\\x", "/a/b", "a/b.jpg", "", None]))


def test_prefix_listed_in_walk_order(s3_env):
    want = [f"s3://{BUCKET}/{k}" for k in ("p/b.jpg", "p/a/x.jpg", "p/a/y.png", "p/c/z.jpg")]
    assert remote.list_images(f"s3://{BUCKET}/p/") == want
    assert remote.list_images(f"s3://{BUCKET}/p") == want
    assert remote.list_images(f"s3://{BUCKET}/nothing/") == []
    items = collect(f"s3://{BUCKET}/p/")
    assert [(i.key, i.path, i.label) for i in items] == [(u, u, None) for u in want]
    assert [i.key for i in collect(f"s3://{BUCKET}/p")] == want  # a prefix without the '/'
    labelled = collect(f"s3://{BUCKET}/p/", labels_from_folders=True)
    assert [i.label for i in labelled] == [None, 0, 0, 1]
    assert remote.folder_classes(f"s3://{BUCKET}/p/") == ["a", "c"]
    assert collect(f"s3://{BUCKET}/p/a/x.jpg") == [type(items[0])(want[1], want[1])]
    with pytest.raises(ResnetError, match=r"^s3://resnet-test/empty/: prefix holds no image"):
        collect(f"s3://{BUCKET}/empty/")
    with pytest.raises(ResnetError, match=r"^s3://resnet-test/p/nope.jpg: input list or image "
                                          r"not found$"):
        collect(f"s3://{BUCKET}/p/nope.jpg")


def test_read_errors_are_one_line(s3_env):
    assert remote.read_bytes(f"s3://{BUCKET}/p/notes.txt") == b"not an image"
    boto3.client("s3").put_object(Bucket=BUCKET, Key="odd/a b#1%20.jpg", Body=b"literal")
    assert remote.read_bytes(f"s3://{BUCKET}/odd/a b#1%20.jpg") == b"literal"  # as the aws CLI
    with pytest.raises(ImageError, match=r"^s3://resnet-test/p/gone.jpg: no such key$"):
        remote.read_bytes(f"s3://{BUCKET}/p/gone.jpg")
    with pytest.raises(ImageError, match=r"^s3://no-such-bucket-x/a.jpg: no such bucket$"):
        remote.read_bytes("s3://no-such-bucket-x/a.jpg")
    with pytest.raises(ResnetError, match=r"^s3://no-such-bucket-x/p/: no such bucket$"):
        remote.list_images("s3://no-such-bucket-x/p/")


def test_lists_local_and_remote(s3_env, tmp_path):
    client = boto3.client("s3")
    client.put_object(Bucket=BUCKET, Key="lists/l.txt",
                      Body=b"../p/b.jpg 3\n# c\n\na/x.jpg\n/p/c/z.jpg\ns3://other-bkt/k.jpg 1\n")
    items = collect(f"s3://{BUCKET}/lists/l.txt")
    assert [(i.key, i.path, i.label) for i in items] == [
        ("../p/b.jpg", f"s3://{BUCKET}/p/b.jpg", 3),
        ("a/x.jpg", f"s3://{BUCKET}/lists/a/x.jpg", None),
        ("/p/c/z.jpg", f"s3://{BUCKET}/p/c/z.jpg", None),
        ("s3://other-bkt/k.jpg", "s3://other-bkt/k.jpg", 1)]
    lst = tmp_path / "l.txt"
    lst.write_text(f"s3://{BUCKET}/p/b.jpg 2\nlocal.jpg\n")
    assert [(i.path, i.label) for i in read_list(str(lst))] == [
        (f"s3://{BUCKET}/p/b.jpg", 2), (str(tmp_path / "local.jpg"), None)]


def _extract(model, data, out, env, *extra):
    return run_cli("--job=extract", f"--model={model}", f"--data={data}", f"--output_dir={out}",
                   "--output_layer=avgpool", "--engine=dygraph", "--use_gpu=0",
                   "--batch_size=2", *extra, env=env)


def test_extract_from_s3_equals_local(s3_env, model_factory, tmp_path):
    env, local = s3_env
    model = model_factory(18)
    r = _extract(model, f"s3://{BUCKET}/p/", tmp_path / "s3", env, "--labels_from_folders")
    assert r.returncode == 0, r.stderr
    r = _extract(model, local / "p", tmp_path / "local", env, "--labels_from_folders")
    assert r.returncode == 0, r.stderr
    got, want = (resnet.load_features(str(tmp_path / n)) for n in ("s3", "local"))
    assert got.images == [f"s3://{BUCKET}/p/{os.path.relpath(p, local / 'p')}"
                          for p in want.images]
    assert got.labels.tolist() == want.labels.tolist() == [-1, 0, 0, 1]
    np.testing.assert_allclose(got["avgpool"], want["avgpool"], rtol=1e-5)
    manifest = json.loads((tmp_path / "s3" / "manifest.json").read_text())
    assert (manifest["data"], manifest["classes"]) == (f"s3://{BUCKET}/p/", ["a", "c"])


def test_missing_key_in_a_local_list_is_skipped(s3_env, model_factory, tmp_path):
    env, local = s3_env
    lst = tmp_path / "l.txt"
    missing = f"s3://{BUCKET}/p/missing.jpg"
    lst.write_text(f"s3://{BUCKET}/p/b.jpg\n{missing}\n{local / 'p' / 'a' / 'x.jpg'}\n")
    r = _extract(model_factory(18), lst, tmp_path / "o", env)
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr
    failed = (tmp_path / "o" / "failed.txt").read_text().splitlines()
    assert failed == [f"{missing}\t{missing}: no such key"]
    assert resnet.load_features(str(tmp_path / "o")).images == [
        f"s3://{BUCKET}/p/b.jpg", str(local / "p" / "a" / "x.jpg")]


def test_missing_bucket_is_one_line(s3_env, model_factory, tmp_path):
    env, _ = s3_env
    r = _extract(model_factory(18), "s3://no-such-bucket-x/p/", tmp_path / "o", env)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines[-1] == "resnet: error: s3://no-such-bucket-x/p/: no such bucket", r.stderr
    assert "Traceback" not in r.stderr and len(lines) <= 2  # at most the device line before
