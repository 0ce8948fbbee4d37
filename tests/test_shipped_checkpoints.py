"""The models shipped in checkpoints/ load, describe themselves, and animate the shipped example."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from animate_cli.checkpoint import SHIPPED_CHECKPOINTS, load_checkpoint, resolve_checkpoint, shipped_checkpoint_dir
from animate_cli.cli import cli
from tests.conftest import REPO

EXAMPLES = REPO / "examples"


@pytest.mark.parametrize("name", sorted(SHIPPED_CHECKPOINTS))
def test_shipped_checkpoint_loads_with_complete_metadata(name):
    path = resolve_checkpoint(name)
    assert path.parent == shipped_checkpoint_dir()
    assert path.stat().st_size <= 25e6
    model = load_checkpoint(path)
    assert model.first_order == (name == "first")
    assert model.align_corners is True
    provenance = model.provenance
    for key in ("data", "steps", "config", "reconstruction_loss", "metrics", "command"):
        assert key in provenance, key
    assert provenance["steps"] > 0
    metrics = (
        "reconstruction_l1", "keypoint_error_px", "flow_epe_px", "animation_l1", "still_source_l1",
        "animation_subject_l1", "animation_background_l1", "local_motion_error", "local_motion_identity_error",
        "keypoints_on_subject",
    )
    for key in metrics:
        assert isinstance(provenance["metrics"][key], float), key


def test_the_default_model_halves_the_still_source_error_on_held_out_puppets():
    """The default-model target, as recorded by `animate evaluate` when the file was published."""
    metrics = load_checkpoint(resolve_checkpoint("first")).provenance["metrics"]
    assert metrics["animation_l1"] <= metrics["still_source_l1"] / 2


def test_the_first_order_beats_the_zeroth_on_held_out_puppets():
    """The seed's claim, as recorded by `animate evaluate` when the files were published: with the same budget, local
    affine motion animates better and gives a more accurate dense flow than rigid shifts."""
    first, zeroth = (load_checkpoint(resolve_checkpoint(n)).provenance["metrics"] for n in ("first", "zeroth"))
    assert first["animation_l1"] < zeroth["animation_l1"]
    assert first["flow_epe_px"] < zeroth["flow_epe_px"]


def test_both_orders_share_everything_but_the_jacobian():
    first, zeroth = (load_checkpoint(resolve_checkpoint(n)).config for n in ("first", "zeroth"))
    data = zeroth.to_dict()
    data["model_params"]["common_params"]["estimate_jacobian"] = True
    assert data == first.to_dict()
    steps = {load_checkpoint(resolve_checkpoint(n)).provenance["steps"] for n in ("first", "zeroth")}
    assert len(steps) == 1  # the same training budget


def test_checkpoints_list_shows_both_with_sizes_and_metrics():
    result = CliRunner().invoke(cli, ["checkpoints", "list", "--json"])
    assert result.exit_code == 0, result.output
    entries = {e["name"]: e for e in json.loads(result.stdout)}
    assert set(entries) == {"first", "zeroth"}
    assert all(e["installed"] and e["size_mb"] > 0 and e["metrics"] for e in entries.values())
    assert entries["first"]["default"] is True


def test_the_default_model_animates_the_example(tmp_path):
    from animate_cli.media.images import read_image
    from animate_cli.media.resize import fit_image
    from animate_cli.media.video import open_video, probe

    out = tmp_path / "result.mp4"
    result = CliRunner().invoke(
        cli, ["run", str(EXAMPLES / "source.png"), str(EXAMPLES / "driving.mp4"), "-o", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checkpoint"].endswith(SHIPPED_CHECKPOINTS["first"])
    driving_info = probe(EXAMPLES / "driving.mp4")
    info = probe(out)
    assert info.frame_count == driving_info.frame_count and info.has_audio
    source = fit_image(read_image(EXAMPLES / "source.png"), info.width, "crop").astype(np.float64)
    with open_video(out) as reader:
        frames = np.stack([frame.image for frame in reader]).astype(np.float64)
    # frames differ from the source (beyond coding noise) and from each other
    assert np.abs(frames - source).mean(axis=(1, 2, 3)).max() > 2
    assert np.abs(np.diff(frames, axis=0)).mean() > 0.5


def test_keypoints_move_with_the_driver():
    """The default model's keypoints on the example's driving frames move as the puppet moves."""
    import torch

    from animate_cli.media.video import open_video
    from animate_cli.pipeline import Animator

    model = load_checkpoint(resolve_checkpoint("first"))
    animator = Animator(model, torch.device("cpu"))
    with open_video(EXAMPLES / "driving.mp4") as reader:
        frames = [frame.image for frame in reader]
    values = animator.keypoints(frames).value.numpy()  # (T, K, 2) on [-1, 1]
    travel = np.abs(values - values[0]).max(axis=0).mean()  # how far each keypoint gets from its start
    assert travel > 0.02  # more than a pixel of a 128-pixel frame, on average over keypoints


def test_training_configs_pair_up_and_keep_the_shipped_architecture():
    """Every phase of checkpoints/README.md's recipe: the two orders' configs differ only in the jacobian, and all
    phases build the network the shipped files hold."""
    from animate_cli.config import load_config

    config_dir = REPO / "checkpoints" / "configs"
    phases = sorted(path.name.removeprefix("puppets-128-first") for path in config_dir.glob("puppets-128-first*.yaml"))
    assert phases == ["-continue.yaml", "-gpu-polish.yaml", "-gpu.yaml", "-phase3.yaml", ".yaml"]
    shipped = load_checkpoint(resolve_checkpoint("first")).config.to_dict()["model_params"]
    for phase in phases:
        first = load_config(config_dir / f"puppets-128-first{phase}").to_dict()
        zeroth = load_config(config_dir / f"puppets-128-zeroth{phase}").to_dict()
        assert first["model_params"]["common_params"]["estimate_jacobian"] is True
        zeroth["model_params"]["common_params"]["estimate_jacobian"] = True
        assert zeroth == first, phase
        assert first["model_params"] == shipped, phase
