"""``animate evaluate`` through the root command group."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from animate_cli.cli import cli
from animate_cli.data.synth import SynthOptions, synthesize


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("evaluate-cli") / "puppets"
    synthesize(out, SynthOptions(size=64, videos=6, frames=6, seed=1, pairs=2))
    return out


def invoke(*args: str):
    return CliRunner().invoke(cli, ["evaluate", *args])


def test_json_is_one_object_with_every_section(tiny_checkpoint, dataset):
    result = invoke("--checkpoint", str(tiny_checkpoint), "--data", str(dataset), "--json", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 1
    found = json.loads(result.stdout)
    assert found["checkpoint"] == str(tiny_checkpoint) and found["data"] == str(dataset)
    assert set(found["reconstruction"]) == {"l1", "frames", "videos"}
    assert found["reconstruction"]["frames"] == 12 and found["reconstruction"]["videos"] == 2
    assert "error_px" in found["keypoints"] and "epe" in found["flow"]
    assert {"l1", "still_source_l1", "driving_frame_l1", "pairs"} <= set(found["animation"])
    assert found["animation"]["pairs"] == 2


def test_output_folder_gets_a_report_and_an_examples_grid(tiny_checkpoint, dataset, tmp_path):
    out = tmp_path / "report"
    result = invoke("--checkpoint", str(tiny_checkpoint), "--data", str(dataset), "-o", str(out), "--max-videos", "1")
    assert result.exit_code == 0, result.output
    assert "reconstruction L1" in result.stdout and "still source L1" in result.stdout
    report = (out / "report.md").read_text()
    assert "| reconstruction L1 |" in report and "examples.png" in report
    grid = np.asarray(Image.open(out / "examples.png"))
    assert grid.shape == (2 * 64, 4 * 64, 3)  # one clip and one pair, four columns


def test_quiet_prints_nothing(tiny_checkpoint, dataset):
    result = invoke("--checkpoint", str(tiny_checkpoint), "--data", str(dataset), "--max-videos", "1", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and result.stderr == ""


def test_a_data_folder_without_test_is_one_line_and_exit_code_2(tiny_checkpoint, tmp_path):
    (tmp_path / "train").mkdir()
    result = invoke("--checkpoint", str(tiny_checkpoint), "--data", str(tmp_path))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no 'test' folder" in lines[0]


def test_a_missing_checkpoint_is_one_line_and_exit_code_2(dataset, tmp_path):
    result = invoke("--checkpoint", str(tmp_path / "nothing.safetensors"), "--data", str(dataset))
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "no such file" in result.stderr


def test_evaluate_module_imports_only_click_at_top_level():
    code = "import sys, animate_cli.cli.evaluate; print(any(m in sys.modules for m in ('numpy', 'torch', 'av', 'PIL')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
