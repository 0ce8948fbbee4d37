"""``animate train`` through the root command group."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from animate_cli.cli import cli
from tests.training.tiny import make_dataset, write_config


@pytest.fixture
def runner(tmp_path):
    # no VGG19 weights from this machine's user: the run must pick the L1 fallback and say so
    return CliRunner(env={"HOME": str(tmp_path / "home"), "ANIMATE_VGG19_WEIGHTS": None})


def test_train_writes_checkpoints_log_and_a_panel(tmp_path, runner):
    make_dataset(tmp_path / "data", clips=3)
    config = write_config(tmp_path)
    run = tmp_path / "run"
    args = ["train", "--config", str(config), "--data", str(tmp_path / "data"), "--out", str(run),
            "--max-steps", "2", "--batch-size", "2", "--workers", "0"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("training tiny on") and "reconstruction loss l1" in first
    assert "trained to step 2" in result.stdout
    assert (run / "checkpoint.safetensors").is_file() and (run / "model.safetensors").is_file()
    assert list((run / "panels").glob("step_*.png")) == [run / "panels" / "step_0000002.png"]
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert records[0]["event"] == "start" and records[0]["reconstruction_loss"] == "l1"
    steps = [r for r in records if r["event"] == "step"]
    assert [r["step"] for r in steps] == [1, 2]
    assert set(steps[0]) >= {"step", "epoch", "losses", "lr", "seconds"}
    assert {"reconstruction", "equivariance_value", "equivariance_jacobian"} == set(steps[0]["losses"])

    again = runner.invoke(cli, [*args[:-6], "--max-steps", "3", "--batch-size", "2", "--workers", "0", "--quiet"])
    assert again.exit_code == 0, again.output
    assert again.output == ""
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records] == ["start", "step", "step", "end", "start", "step", "end"]
    assert records[4]["resumed"] and records[4]["start_step"] == 2 and records[5]["step"] == 3


def test_missing_data_folder_is_exit_2_with_one_line(tmp_path, runner):
    config = write_config(tmp_path)
    args = ["train", "--config", str(config), "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope'}: no such data folder"]
    assert not (tmp_path / "run").exists()


def test_unknown_preset_is_exit_2(tmp_path, runner):
    make_dataset(tmp_path / "data", clips=1)
    args = ["train", "--config", "vox-512", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2 and result.stderr.startswith("error: config 'vox-512'")


def test_help_lists_the_options(runner):
    result = runner.invoke(cli, ["train", "--help"])
    assert result.exit_code == 0
    for option in ("--max-steps", "--epochs", "--batch-size", "--device", "--precision", "--workers",
                   "--checkpoint-every", "--keep-every", "--visualize-every", "--vgg19", "--reconstruction-loss"):
        assert option in result.output
