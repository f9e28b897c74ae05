"""Trust: never destroy results, never claim what did not happen, say what to install.

Each test here was written against a failure a new user saw (issue 10)."""
import json
import os
import re
import sys

import h5py
import launch
import pytest
from conftest import EXAMPLES, ROOT, run_cli, write_jpeg

from resnet.errors import ResnetError
from resnet.inputs.lists import collect, read_list


def _no_paddle(tmp_path):
    """A PYTHONPATH entry that makes `import paddle` fail as on an install without it."""
    shadow = tmp_path / "no_paddle"
    (shadow / "paddle").mkdir(parents=True, exist_ok=True)
    (shadow / "paddle" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'paddle'\", name='paddle')\n")
    return {"PYTHONPATH": f"{shadow}{os.pathsep}{ROOT}"}


def _one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_missing_paddle_says_what_to_install(model50, tmp_path):
    env = _no_paddle(tmp_path)
    r = launch.run([sys.executable, "-m", "resnet", "--job=extract", f"--model={model50}",
                        f"--data={EXAMPLES}/cat.jpg", f"--output_dir={tmp_path / 'o'}"],
                   capture_output=True, text=True, env=dict(os.environ, **env), cwd=ROOT)
    assert r.returncode == 1
    line = _one_error_line(r.stderr)
    assert line.startswith("resnet: error: PaddlePaddle is not installed")
    assert 'pip install -e ".[cpu]"' in line and "paddlepaddle-gpu" in line
    assert "internal error" not in line
    assert not (tmp_path / "o").exists()
    # --job=check reads files only: it works without Paddle (get_model.sh relies on it)
    r = launch.run([sys.executable, "-m", "resnet", "--job=check", f"--model={model50}"],
                   capture_output=True, text=True, env=dict(os.environ, **env), cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "valid v1 ResNet-50 model" in r.stdout


@pytest.mark.parametrize("flags,message", [
    (["--job=extract", "--format=xml"], "argument --format: invalid choice: 'xml'"),
    (["--job=nope"], "argument --job: invalid choice: 'nope'"),
    (["--model=x"], "the following arguments are required: --job"),
    (["--job=extract", "--model=m", "--batch_size=0"], "--batch_size must be at least 1"),
    (["--job=extract", "--model=m", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_flags_one_line_exit_2(flags, message):
    r = run_cli(*flags)
    assert r.returncode == 2
    line = _one_error_line(r.stderr)
    assert line.startswith("resnet: error: ") and message in line, line
    assert line.endswith("(see python -m resnet --help)")


@pytest.mark.parametrize("job,missing", [("extract", "--data"), ("predict", "--data"),
                                         ("extract", "--model"), ("check", "--model")])
def test_missing_required_flag_exits_2_before_paddle(job, missing, tmp_path):
    given = {"--data": f"--data={EXAMPLES}/cat.jpg", "--model": "--model=somewhere"}
    flags = [v for k, v in given.items() if k != missing]
    r = launch.run([sys.executable, "-m", "resnet", f"--job={job}", *flags],
                   capture_output=True, text=True, cwd=ROOT,
                   env=dict(os.environ, **_no_paddle(tmp_path)))
    assert r.returncode == 2  # an import of Paddle would have failed with exit 1
    assert f"--job={job} needs {missing}" in _one_error_line(r.stderr)


def test_no_file_in_the_project_cites_docs_outside_it():
    """Docs named in code and docs live in the repository (docs/...), nowhere else."""
    cited = {}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("build", "output")]
        for name in files:
            if name.endswith((".py", ".sh", ".md", ".toml")):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    for ref in re.findall(r"[\w./-]*\b[A-Za-z_0-9]+\.md\b", f.read()):
                        cited.setdefault(ref, path)
    assert cited, "the scan found nothing: it is broken"
    for ref, where in cited.items():
        if ref.startswith(("http", "../")):
            raise AssertionError(f"{where} cites {ref}, outside the repository")
        candidates = [os.path.join(ROOT, ref), os.path.join(os.path.dirname(where), ref),
                      os.path.join(ROOT, "docs", ref)]
        assert any(os.path.isfile(c) for c in candidates), f"{where} cites missing {ref}"


# --- inputs ---------------------------------------------------------------------------------

def test_directory_is_walked_recursively_in_sorted_order(tmp_path):
    tree = tmp_path / "tree"
    for rel in ("b/2.jpg", "b/1.png", "a/x/3.jpg", "a/0.jpg", "top.jpg", ".hidden/h.jpg",
                "a/notes.txt"):
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(b"x")
    items = collect(str(tree))
    assert [os.path.relpath(i.key, tree) for i in items] == [
        "top.jpg", "a/0.jpg", "a/x/3.jpg", "b/1.png", "b/2.jpg"]
    assert all(i.label is None for i in items)
    labelled = collect(str(tree), labels_from_folders=True)
    assert [i.label for i in labelled] == [None, 0, 0, 1, 1]  # a -> 0, b -> 1
    with pytest.raises(ResnetError, match="--labels_from_folders needs --data to be a directory"):
        collect(str(tree / "top.jpg"), labels_from_folders=True)


def test_non_integer_label_is_refused_with_its_line(tmp_path):
    lst = tmp_path / "l.list"
    lst.write_text("# c\nimg_0001.jpg 3\nmy photo.jpg\nimg_0003.jpg notalabel\n")
    with pytest.raises(ResnetError, match=r"l.list:4: label 'notalabel' after 'img_0003.jpg' "
                                          r"is not an integer"):
        read_list(str(lst))
    (tmp_path / "odd name.jpg x").write_bytes(b"x")  # a real file with that name is a path
    lst.write_text("odd name.jpg x\na.jpg b.jpg\n")
    assert [i.key for i in read_list(str(lst))] == ["odd name.jpg x", "a.jpg b.jpg"]


# --- the extract job: nothing created or compiled before the checks pass ---------------------

def test_wrong_model_leaves_no_output_dir(tmp_path):
    out = tmp_path / "out" / "deeper"
    r = run_cli("--job=extract", f"--model={tmp_path / 'nope'}", f"--data={EXAMPLES}/cat.jpg",
                f"--output_dir={out}", "--use_gpu=0")
    assert r.returncode == 1
    assert "nope: model directory not found" in r.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_resume_with_other_settings_refused_before_compiling(model50, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "fresh_cache"
    img = write_jpeg(tmp_path / "a.jpg")
    r = run_cli("--job=extract", f"--model={model50}", f"--data={img}", f"--output_dir={out}",
                "--use_gpu=0", "--engine=dygraph", "--output_layer=pool1")
    assert r.returncode == 0, r.stderr
    r = run_cli("--job=extract", f"--model={model50}", f"--data={img}", f"--output_dir={out}",
                "--use_gpu=0", "--output_layer=avgpool", "--resume",
                env={"RESNET_CACHE_DIR": str(cache)})
    assert r.returncode == 1
    assert "cannot resume: the earlier run used different layers" in r.stderr
    assert not cache.exists()  # refused before anything was compiled


def test_depth_read_off_a_v1_directory(model_factory, tmp_path):
    model = model_factory(101)
    r = run_cli("--job=check", f"--model={model}")
    assert r.returncode == 0, r.stderr
    assert "valid v1 ResNet-101 model" in r.stdout
    out = tmp_path / "o"
    r = run_cli("--job=extract", f"--model={model}", f"--data={EXAMPLES}/cat.jpg",
                f"--output_dir={out}", "--use_gpu=0", "--engine=dygraph",
                "--output_layer=res4_23_addto")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0].startswith("resnet: running ResNet-101 on CPU")
    with h5py.File(out / "features.h5") as f:
        assert f["res4_23_addto"].shape == (1, 1024, 14, 14)
    r = run_cli("--job=check", f"--model={model}", "--layer_num=50")  # explicit: still an error
    assert r.returncode == 1
    assert "holds a ResNet-101: pass --layer_num=101" in r.stderr


def test_labels_from_folders_recorded(model50, tmp_path):
    tree = tmp_path / "tree"
    for cls, n in (("dog", 2), ("cat", 1)):
        (tree / cls).mkdir(parents=True)
        for i in range(n):
            write_jpeg(tree / cls / f"{i}.jpg", seed=i)
    out = tmp_path / "o"
    r = run_cli("--job=extract", f"--model={model50}", f"--data={tree}", f"--output_dir={out}",
                "--use_gpu=0", "--engine=dygraph", "--output_layer=pool1",
                "--labels_from_folders")
    assert r.returncode == 0, r.stderr
    with h5py.File(out / "features.h5") as f:
        assert [os.path.relpath(p.decode(), tree) for p in f["images"][:]] == [
            "cat/0.jpg", "dog/0.jpg", "dog/1.jpg"]
        assert f["labels"][:].tolist() == [0, 1, 1]
        assert json.loads(f.attrs["classes"]) == ["cat", "dog"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["classes"] == ["cat", "dog"]


def test_predict_never_touches_an_extract_runs_files(model50, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "failed.txt").write_text("earlier.jpg\tempty file\n")
    csv_path = tmp_path / "p.csv"
    csv_path.write_text("precious\n")
    args = ["--job=predict", f"--model={model50}", f"--data={EXAMPLES}/cat.jpg",
            f"--output_dir={out}", "--use_gpu=0", "--engine=dygraph"]
    r = run_cli(*args, f"--output_file={csv_path}")
    assert r.returncode == 1
    assert "p.csv: already exists; pass --overwrite" in r.stderr.strip().splitlines()[-1]
    assert csv_path.read_text() == "precious\n"
    lst = tmp_path / "l.list"
    lst.write_text(f"{EXAMPLES}/cat.jpg\n{tmp_path / 'missing.jpg'}\n")
    r = run_cli(*args[:2], f"--data={lst}", *args[3:], f"--output_file={csv_path}",
                "--overwrite")
    assert r.returncode == 3, r.stderr
    assert (out / "failed.txt").read_text() == "earlier.jpg\tempty file\n"
    assert (out / "predict_failed.txt").read_text().startswith(f"{tmp_path / 'missing.jpg'}\t")
    assert csv_path.read_text().startswith("path,index_1")


def test_readme_test_block_installs_what_the_tests_need_and_ci_runs_it():
    from readme_block import block  # on sys.path through conftest

    commands = block(os.path.join(ROOT, "README.md"), "## Running the tests").splitlines()
    install = next(c for c in commands if c.startswith("pip install -e "))
    extras = re.search(r'"\.\[([\w,]+)\]"', install).group(1).split(",")
    assert {"cpu", "test"} <= set(extras)  # Paddle and pytest, on a fresh machine
    assert commands[-1].startswith("python -m pytest") and "-n 2" in commands[-1]
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as f:
        ci = f.read()
    assert 'readme_block.py README.md "## Running the tests"' in ci
