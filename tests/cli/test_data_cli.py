"""``animate data synth`` through the root command group."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

from click.testing import CliRunner

from animate_cli.cli import cli

ARGS = ["--size", "64", "--videos", "4", "--frames", "6", "--seed", "3", "--pairs", "2"]


def test_synth_writes_a_data_set_and_prints_one_line(tmp_path):
    out = tmp_path / "puppets"
    result = CliRunner().invoke(cli, ["data", "synth", str(out), *ARGS])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 1 and "2 pair targets" in result.stdout
    assert (out / "dataset.json").is_file()
    for split in ("train", "test"):
        clips = [p for p in (out / split).iterdir() if p.is_dir()]
        assert clips and all(clip.with_suffix(".npz").is_file() for clip in clips)
        assert all(len(list(clip.glob("*.png"))) == 6 for clip in clips)
    with open(out / "test" / "pairs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and all((out / row["target"]).is_dir() for row in rows)


def test_synth_refuses_an_existing_folder_with_one_line_and_exit_code_2(tmp_path):
    out = tmp_path / "puppets"
    out.mkdir()
    (out / "something").write_text("x")
    result = CliRunner().invoke(cli, ["data", "synth", str(out), *ARGS])
    assert result.exit_code == 2
    message = f"error: {out} is not empty (pass --overwrite to replace the data set in it)"
    assert result.stderr.strip().splitlines() == [message]
    result = CliRunner().invoke(cli, ["data", "synth", str(out), *ARGS, "--overwrite", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["train"] + summary["test"] == 4 and summary["pairs"] == 2


def test_bad_option_is_one_line_exit_code_2(tmp_path):
    result = CliRunner().invoke(cli, ["data", "synth", str(tmp_path / "x"), "--videos", "0"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == ["error: --videos must be at least 1, got 0"]


def test_data_module_imports_only_click_at_top_level():
    code = "import sys, animate_cli.cli.data; print(any(m in sys.modules for m in ('numpy', 'torch', 'av', 'PIL')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
