"""Inputs and the command line under hostile or careless use (issue 21: items 4, 10, 13, 14,
15, 16, 17): bombs in formats Pillow cannot size, FIFOs, SIGTERM, foreign flags, README's API
example as a script, install hints."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import launch
import numpy as np
import pytest
from conftest import EXAMPLES, ROOT, readme_blocks, run_cli, write_jpeg

import resnet
from resnet import cli
from resnet.config import RunConfig
from resnet.errors import ImageError, ResnetError
from resnet.inputs import decoding, imaging
from resnet.inputs.lists import Item, collect
from resnet.jobs import JOBS
from resnet.models.preprocessing import V1


def _env(**extra) -> dict:
    """The environment of the runs a test starts, taken when it starts them: a copy made at
    import would predate conftest's engine_cache, and its runs would compile into the user's
    ~/.cache."""
    return dict(os.environ, PYTHONPATH=ROOT, **extra)


def _hdr_bomb(path, width=12000, height=12000):
    """A Radiance HDR (a format Pillow cannot read) whose header claims width x height, with
    a few KB of data: decoded, it would take width * height * 12 bytes."""
    with open(path, "wb") as f:
        f.write(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n"
                + f"-Y {height} +X {width}\n".encode() + bytes(range(256)) * 40)
    return str(path)


def _real_hdr(path):
    """A small real Radiance HDR as OpenCV writes it."""
    ok, buf = imaging.cv2.imencode(".hdr", np.random.default_rng(0).random((40, 50, 3),
                                                                            np.float32))
    assert ok
    buf.tofile(str(path))
    return str(path)


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


# --- item 4: the pixel limit holds for every format OpenCV decodes -----------------------------

_MEASURE = """
import sys, time
start = time.monotonic()
from resnet.inputs import imaging
try:
    imaging.decode(sys.argv[1])
    print("decoded")
except imaging.ImageError as e:
    print(e)
print(time.monotonic() - start)
# VmHWM, not ru_maxrss: that one keeps the size of the (large) forking pytest worker
print([int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("VmHWM")][0])
"""


def test_hdr_bomb_named_jpg_is_refused_fast_in_bounded_memory(tmp_path):
    bomb = _hdr_bomb(tmp_path / "a.jpg")
    spool = tmp_path / "opencv-temp"  # where OpenCV copies an HDR's bytes to decode them
    spool.mkdir()
    r = subprocess.run([sys.executable, "-c", _MEASURE, bomb], capture_output=True, text=True,
                       env=_env(OPENCV_TEMP_PATH=str(spool)), timeout=120)
    assert r.returncode == 0, r.stderr
    message, seconds, peak_mb = r.stdout.splitlines()
    assert message.startswith(bomb + ": ") and "over the limit of 100,000,000 pixels" in message
    assert float(seconds) < 10 and int(peak_mb) < 400  # decoded: 1.7 GB of float pixels
    # OpenCV leaves its copy of a refused file behind; the run takes it away (and its own
    # private folder at exit)
    assert os.listdir(spool) == []
    # a small real HDR still decodes: the cap is a limit, not a ban on the format
    r = subprocess.run([sys.executable, "-c", _MEASURE, _real_hdr(tmp_path / "ok.hdr")],
                       capture_output=True, text=True, env=_env(), timeout=120)
    assert r.stdout.splitlines()[0] == "decoded", r.stdout + r.stderr


def test_opencv_copies_of_file_only_formats_go_to_a_folder_removed_after_each_decode(
        tmp_path, monkeypatch):
    """HDR and JPEG 2000 are decoded from a copy on disk: the copy goes to a private folder
    made for that decode and removed after it (refused or not), the setting is put back, and
    formats decoded in memory make no folder at all."""
    spool = tmp_path / "opencv-temp"
    spool.mkdir()
    monkeypatch.setenv(imaging.OPENCV_TEMP_ENV, str(spool))
    made = []
    real = imaging.tempfile.mkdtemp
    monkeypatch.setattr(imaging.tempfile, "mkdtemp", lambda **kw: made.append(real(**kw))
                        or made[-1])
    # (the bomb, refused by OpenCV's cap, is the subprocess test above: this process's OpenCV
    # was loaded before the cap could be set, so it only sees small files)
    monkeypatch.setattr(imaging, "OPENCV_CAPPED", True)
    broken = tmp_path / "a.hdr"
    broken.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 10 +X 10\n" + b"\xff" * 50)
    with pytest.raises(ImageError, match="not a readable image"):
        imaging.decode(str(broken))
    assert imaging.decode(_real_hdr(tmp_path / "b.hdr")).shape == (40, 50, 3)
    from PIL import Image  # OpenCV 5.1's JPEG 2000 writer refuses small images

    Image.fromarray(np.zeros((8, 12, 3), np.uint8)).save(tmp_path / "c.jp2", "JPEG2000")
    assert imaging.decode(str(tmp_path / "c.jp2")).shape == (8, 12, 3)
    assert len(made) == 3 and all(os.path.dirname(m) == str(spool) for m in made)
    assert os.listdir(spool) == [] and os.environ[imaging.OPENCV_TEMP_ENV] == str(spool)
    imaging.decode(write_jpeg(tmp_path / "d.jpg"))
    assert len(made) == 3  # in memory: no folder


def test_opencv_itself_is_capped_once_resnet_loaded_it(tmp_path):
    """The limit is in OpenCV, so it covers whatever format it decodes: set in the environment
    before cv2 loads (it reads it then only), inherited by decoding processes."""
    bomb = _hdr_bomb(tmp_path / "b.hdr")
    env = {k: v for k, v in _env().items() if k != imaging.OPENCV_PIXELS_ENV}
    env[imaging.OPENCV_TEMP_ENV] = str(tmp_path)  # OpenCV probed bare leaves its copy
    probe = ("import os, cv2, numpy as np\n"
             "print(os.environ['OPENCV_IO_MAX_IMAGE_PIXELS'], im.OPENCV_CAPPED)\n"
             "try:\n    cv2.imdecode(np.fromfile(%r, np.uint8), cv2.IMREAD_UNCHANGED)\n"
             "except cv2.error as e:\n    print('CV_IO_MAX_IMAGE_PIXELS' in str(e))\n") % bomb
    r = subprocess.run([sys.executable, "-c", "import resnet.inputs.imaging as im\n" + probe],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.stdout.split() == ["100000000", "True", "True"], r.stdout + r.stderr
    # cv2 loaded first, without the setting: not capped, so a file whose size cannot be read
    # before decoding is refused rather than decoded
    r = subprocess.run([sys.executable, "-c", "import cv2\nimport resnet.inputs.imaging as im\n"
                        + probe.split("try:")[0] + "im.decode(%r)\n" % bomb],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.stdout.split() == ["100000000", "False"], r.stdout + r.stderr
    assert "its size cannot be read before decoding" in r.stderr


def test_unknown_size_refused_where_opencv_is_not_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(imaging, "OPENCV_CAPPED", False)
    for path in (_hdr_bomb(tmp_path / "a.jpg"), _real_hdr(tmp_path / "b.jpg")):
        with pytest.raises(ImageError, match="size cannot be read before decoding") as info:
            imaging.decode(path)
        assert str(info.value).startswith(path + ": not a readable image")
    assert imaging.decode(write_jpeg(tmp_path / "c.jpg")).shape == (180, 240, 3)


# --- item 10: FIFOs, devices and sockets are skipped, never opened -----------------------------

@pytest.fixture
def deadline():
    """Fail (TimeoutError in the main thread) instead of hanging, should a FIFO be opened."""
    def expire(signum, frame):
        raise TimeoutError("blocked: a FIFO was opened")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_non_regular_files_are_refused_without_blocking(tmp_path, deadline):
    import socket

    os.mkfifo(tmp_path / "pipe.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.jpg"))
    try:
        for name, what in (("pipe.jpg", "is a FIFO"), ("sock.jpg", "is a socket")):
            with pytest.raises(ImageError, match=what):
                imaging.decode(str(tmp_path / name))
        with pytest.raises(ImageError, match="/dev/null: is a device, not an image"):
            imaging.decode("/dev/null")
    finally:
        sock.close()


def test_decoding_workers_skip_fifo_and_bomb_in_list_order(tmp_path, deadline):
    """The worker processes (as a run uses them): the FIFO and the bomb come back as errors
    at their places, the others decode."""
    os.mkfifo(tmp_path / "fifo.jpg")
    names = ["a.jpg", "fifo.jpg", "bomb.jpg", "b.jpg"]
    write_jpeg(tmp_path / "a.jpg")
    _hdr_bomb(tmp_path / "bomb.jpg")
    write_jpeg(tmp_path / "b.jpg", seed=1)
    items = [Item(n, str(tmp_path / n)) for n in names]
    bad = {}
    start = time.monotonic()
    got = [it.key for batch, _ in decoding.batched(
        items, V1, False, 2, lambda it, e: bad.setdefault(it.key, str(e)),
        workers=2) for it in batch]
    assert time.monotonic() - start < 60
    assert got == ["a.jpg", "b.jpg"]
    assert "is a FIFO" in bad["fifo.jpg"]
    assert "over the limit of 100,000,000 pixels" in bad["bomb.jpg"]


def test_extract_over_a_folder_with_a_fifo_and_a_bomb_finishes_with_exit_3(model_factory,
                                                                          tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        write_jpeg(data / f"img{i}.jpg", seed=i)
    os.mkfifo(data / "x.jpg")
    _hdr_bomb(data / "a.jpg")
    out = tmp_path / "out"
    r = run_cli("--job=extract", f"--model={model_factory(18)}", f"--data={data}",
                f"--output_dir={out}", "--output_layer=pool1", "--engine=dygraph",
                "--use_gpu=0", "--workers=1", timeout=300)
    assert r.returncode == 3, r.stderr
    failed = dict(line.split("\t", 1) for line in
                  (out / "failed.txt").read_text().splitlines())
    assert set(failed) == {str(data / "x.jpg"), str(data / "a.jpg")}
    assert "is a FIFO" in failed[str(data / "x.jpg")]
    assert "over the limit" in failed[str(data / "a.jpg")]
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"
    assert len(resnet.load_features(str(out)).images) == 3


# --- item 13: SIGTERM is Ctrl-C: message, manifest interrupted, exit 143, resumable ------------

@pytest.mark.slow
def test_sigterm_interrupts_cleanly_and_resume_completes(model_factory, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(60):
        write_jpeg(data / f"{i:03d}.jpg", 120, 160, seed=i)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "resnet", "--job=extract", f"--model={model_factory(18)}",
            f"--data={data}", f"--output_dir={out}", "--output_layer=pool1",
            "--engine=dygraph", "--use_gpu=0", "--batch_size=2", "--workers=2"]
    env = _env(RESNET_COMMIT_SECONDS="0")  # a durable point after every batch
    proc = launch.popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        text=True, cwd=tmp_path)
    progress = out / "progress.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if json.loads(progress.read_text()).get("position", 0) > 0:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be terminated"
    children = _children(proc.pid)
    assert children  # the decoding workers
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1].startswith("resnet: terminated (SIGTERM); what "
                                                      "was written so far is kept")
    assert "Traceback" not in stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and 0 < manifest["position"] < 60
    time.sleep(0.5)
    assert not [pid for pid in children if os.path.exists(f"/proc/{pid}")], "workers left"
    r = launch.run(args + ["--resume"], env=env, capture_output=True, text=True,
                   timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    feats = resnet.load_features(str(out))
    assert feats.images == [str(data / f"{i:03d}.jpg") for i in range(60)]
    assert feats["pool1"].shape[0] == 60
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def test_sigterm_handler_is_installed_for_the_run_and_restored(monkeypatch):
    seen = {}

    def fake_main(argv):
        seen["handler"] = signal.getsignal(signal.SIGTERM)
        with pytest.raises(cli.Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises here, in the main thread
        return 0

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli, "_main", fake_main)
    assert cli.main([]) == 0
    assert seen["handler"] is cli._on_sigterm
    assert signal.getsignal(signal.SIGTERM) is before
    assert issubclass(cli.Terminated, KeyboardInterrupt)  # every Ctrl-C cleanup applies


# --- item 15: README's Python API example as a plain script, and fed on stdin -----------------

def test_readme_api_example_runs_as_a_script_and_on_stdin(tmp_path):
    code = readme_blocks("## Python API", page="docs/api.md")[0]
    assert "__main__" not in code
    for how in ("file", "stdin"):
        work = tmp_path / how
        shutil.copytree(EXAMPLES, work / "example")
        script = work / "example_api.py"
        script.write_text(code)
        if how == "file":
            r = subprocess.run([sys.executable, str(script)], cwd=work, capture_output=True,
                               text=True, env=_env(), timeout=600)
        else:
            with open(script) as f:
                r = subprocess.run([sys.executable, "-"], stdin=f, cwd=work,
                                   capture_output=True, text=True, env=_env(), timeout=600)
        assert r.returncode == 0, f"{how}: {r.stderr[-3000:]}"
        lines = r.stdout.splitlines()
        assert lines[0] == "4 [] ['output_api/features.h5']", how
        assert lines[1].endswith("img/s, exit code 0")
        assert lines[2] == "cat.jpg (4, 2048, 1, 1)"
        assert lines[3].startswith("example/cat.jpg ") and lines[3].endswith(" True")
        assert "bootstrapping" not in r.stderr
        status = json.loads((work / "output_api" / "manifest.json").read_text())["status"]
        assert status == "complete"


# --- item 16: flags the job does not read are refused; no prefixes; --version ------------------

_RUN = ["--model=m", "--data=d"]


@pytest.mark.parametrize("flags,message", [
    (["--job=extract", *_RUN, "--output=DIR"],
     "--output is not a flag of --job=extract; it is for --job=diagram/export"),
    (["--job=extract", *_RUN, "--top_k=3"],
     "--top_k is not a flag of --job=extract; it is for --job=predict"),
    (["--job=extract", *_RUN, "--output_file=x.csv"],
     "--output_file is not a flag of --job=extract"),
    (["--job=extract", *_RUN, "--format=hdf5", "--from=keras"],
     "--from is not a flag of --job=extract"),
    (["--job=predict", *_RUN, "--format=hdf5"], "--format is not a flag of --job=predict"),
    (["--job=check", "--model=m", "--use_gpu=0"], "--use_gpu is not a flag of --job=check"),
    (["--job=merge", "--model=m"], "--model is not a flag of --job=merge"),
    (["--job=extract", *_RUN, "--layer=50"], "unrecognized arguments: --layer=50"),
    (["--job=predict", *_RUN, "--top_k=0"], "argument --top_k: must be at least 1, got 0"),
    (["--job=predict", *_RUN, "--top_k=-2"], "argument --top_k: must be at least 1, got -2"),
])
def test_foreign_and_abbreviated_flags_exit_2(flags, message, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(flags)
    assert info.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("resnet: error: ") and message in line, line


def test_version_and_flags_every_job_takes(capsys):
    r = run_cli("--version")
    assert (r.returncode, r.stdout.strip()) == (0, f"resnet {resnet.__version__}")
    for name, run in JOBS.items():
        assert run.reads <= RunConfig.names(), name  # a misspelt setting would be refused
        cli.refuse_foreign(cli.parser(), name, ["job", "debug"])
    # every flag belongs to some job (else it could never be given)
    assert set().union(*(run.reads for _, run in JOBS.items())) == RunConfig.names()


def test_shell_wrappers_pass_only_their_jobs_flags():
    """extract.sh / predict.sh defaults (wrapper.sh) and visualize.sh's job read every flag
    they pass."""
    import re

    for script, job in (("extract.sh", "extract"), ("predict.sh", "predict"),
                        ("resnet/wrapper.sh", "extract"), ("resnet/wrapper.sh", "predict")):
        text = open(os.path.join(ROOT, script)).read()
        text = re.sub(r'"\$PY" -m resnet --job=demo_model[^\n]*', "", text)
        flags = set(re.findall(r"--([a-z_]+)=", text)) - {"job"}
        assert flags, script
        assert not [f for f in flags if f not in JOBS[job].reads], (script, flags)
    assert {"layer_num", "model"} <= JOBS["demo_model"].reads


def test_api_refuses_options_the_job_does_not_read(model_factory):
    model = model_factory(18)
    with pytest.raises(ResnetError, match=r"resnet.extract\(\) does not take top_k=.*"
                                          r"--job=predict"):
        resnet.extract(model, EXAMPLES, top_k=3)
    with pytest.raises(ResnetError, match=r"does not take output="):
        resnet.extract(model, EXAMPLES, output="x")
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ResnetError, match="top_k must be at least 1"):
            resnet.predict(model, EXAMPLES, top_k=bad)


# --- item 14: labels beyond int64 are refused with the list and line --------------------------

@pytest.mark.parametrize("label", ["99999999999999999999999", "9223372036854775808",
                                   "-9223372036854775809", "9" * 5000])
def test_label_beyond_int64_refused_with_its_line(tmp_path, label):
    lst = tmp_path / "l.txt"
    lst.write_text(f"a.jpg 1\nb.jpg {label}\n")
    with pytest.raises(ResnetError) as info:
        collect(str(lst))
    assert str(info.value).startswith(f"{lst}:2: label ")
    assert "out of range (a label is a 64-bit integer)" in str(info.value)
    assert len(str(info.value)) < 200
    lst.write_text("a.jpg 9223372036854775807\nb.jpg -9223372036854775808\n")
    assert [it.label for it in collect(str(lst))] == [2**63 - 1, -2**63]


def test_label_beyond_int64_stops_the_run_before_any_work(model_factory, tmp_path):
    lst = tmp_path / "l.txt"
    lst.write_text(f"{EXAMPLES}/cat.jpg 99999999999999999999999\n")
    r = run_cli("--job=extract", f"--model={model_factory(18)}", f"--data={lst}",
                f"--output_dir={tmp_path / 'out'}", "--use_gpu=0")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"resnet: error: {lst}:1: label 99999999999999999999999 is out of range (a label is "
        "a 64-bit integer)")
    assert not (tmp_path / "out").exists()


# --- item 17: install hints name what works from this repository ------------------------------

def test_missing_pyarrow_hint_names_this_repository(tmp_path):
    shadow = tmp_path / "no_pyarrow"
    (shadow / "pyarrow").mkdir(parents=True)
    (shadow / "pyarrow" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pyarrow'\", name='pyarrow')\n")
    r = subprocess.run([sys.executable, "-c", "from resnet.outputs import FORMATS\n"
                        "FORMATS['parquet'].check_available()"],
                       capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=f"{shadow}{os.pathsep}{ROOT}"))
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert 'pip install -e ".[parquet]"' in last and "pip install pyarrow" in last, last
    assert "resnet[" not in last


def test_no_hint_names_the_unrelated_resnet_package():
    """`resnet` on the package index is another project: hints say `pip install -e ".[x]"`."""
    hits = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("build", "output")
                   and not d.endswith(".egg-info")]
        for name in files:
            if name.endswith((".py", ".sh", ".md", ".toml", ".txt")):
                path = os.path.join(folder, name)
                if path == os.path.abspath(__file__):
                    continue
                with open(path, encoding="utf-8", errors="replace") as f:
                    if "resnet[" in f.read():
                        hits.append(path)
    assert not hits


def test_readme_pandas_example_extra_installs_pandas():
    import re
    import tomllib

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extras = tomllib.load(f)["project"]["optional-dependencies"]
    readme = open(os.path.join(ROOT, "docs", "outputs.md"), encoding="utf-8").read()
    head = readme[:readme.index("import pandas as pd")]
    extra = re.findall(r'pip install -e "\.\[(\w+)\]"', head)[-1]  # the hint above the example
    wanted = {re.split(r"[<>=\[]", r)[0] for r in extras[extra]}
    assert {"pandas", "pyarrow"} <= wanted, (extra, wanted)
