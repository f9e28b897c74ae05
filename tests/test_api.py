"""The Python API matches the CLI (its docs example runs as written in test_inputs_cli.py)."""
import os

import pytest
from conftest import EXAMPLES, run_cli

import resnet


def test_api_equals_cli_and_refuses_unknown_options(model50, tmp_path):
    lst = os.path.join(EXAMPLES, "test.list")
    summary = resnet.extract(model50, lst, layers=["pool1"], output_dir=str(tmp_path / "api"),
                             engine="dygraph", format="text", batch_size=3)
    assert (summary.done, summary.failed, summary.exit_code) == (4, [], 0)
    assert summary.outputs == [str(tmp_path / "api" / n) for n in ("features.txt", "images.txt")]
    r = run_cli("--job=extract", f"--model={model50}", f"--data={lst}", "--output_layer=pool1",
                f"--output_dir={tmp_path / 'cli'}", "--engine=dygraph", "--format=text",
                "--use_gpu=0")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "api" / "features.txt").read_bytes() == \
        (tmp_path / "cli" / "features.txt").read_bytes()
    with pytest.raises(resnet.ResnetError, match="unknown option.*output_layers"):
        resnet.extract(model50, lst, output_layers=["pool1"])
    with pytest.raises(resnet.ResnetError, match="already holds output"):
        resnet.extract(model50, lst, layers=["pool1"], output_dir=str(tmp_path / "api"),
                       engine="dygraph", format="text")
