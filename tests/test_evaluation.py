"""Evaluation: the metric functions on known answers, and the runner on a small synthetic data set."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animate_cli.data.puppets import flow_visibility, ground_truth_flow
from animate_cli.data.synth import SynthOptions, synthesize
from animate_cli.errors import BadInputError
from animate_cli.evaluation import (
    RunningMean,
    apply_linear_map,
    end_point_error,
    evaluate,
    fit_linear_map,
    flow_from_deformation,
    keypoint_error,
    l1,
    l1_on_mask,
    load_truth,
    matrix_errors,
    normalized_to_pixels,
    plan_evaluation,
    true_local_motion,
    write_report,
)
from animate_cli.motion import make_coordinate_grid, warp
from tests.conftest import perturbed_model

OPTIONS = SynthOptions(size=64, videos=6, frames=6, seed=1, pairs=2)


def read_clip(folder: Path) -> np.ndarray:
    """(T, H, W, 3) float64 on [0, 1]: a frame folder, read without the code under test."""
    return np.stack([np.asarray(Image.open(path), dtype=np.float64) / 255 for path in sorted(folder.glob("*.png"))])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("evaluation") / "puppets"
    synthesize(out, OPTIONS)
    return out


@pytest.fixture(scope="module")
def model():
    from animate_cli.config import config_from_yaml
    from tests.conftest import TINY_CONFIG_YAML

    return perturbed_model(config_from_yaml(TINY_CONFIG_YAML, name="tiny"))


@pytest.fixture(scope="module")
def result(model, dataset):
    return evaluate(model, dataset, batch_size=4)


# ------------------------------------------------------------------------------------------------ metrics
def test_a_perfect_prediction_scores_zero_on_every_metric():
    rng = np.random.default_rng(0)
    frames = rng.random((3, 8, 8, 3), dtype=np.float32)
    flow = rng.normal(size=(8, 8, 2)).astype(np.float32)
    joints = rng.normal(size=(5, 4, 2))
    assert l1(frames, frames) == 0
    assert end_point_error(flow, flow, np.ones((8, 8), dtype=bool)) == 0
    assert keypoint_error(joints, joints) == 0


def test_l1_and_end_point_error_on_known_differences():
    assert l1(np.zeros((2, 4, 4, 3), np.float32), np.full((2, 4, 4, 3), 0.25, np.float32)) == pytest.approx(0.25)
    truth = np.zeros((4, 4, 2), np.float32)
    prediction = truth + np.array([3.0, 4.0], np.float32)
    valid = np.zeros((4, 4), dtype=bool)
    valid[1:3, 1:3] = True
    prediction[0, 0] = 100  # outside the valid pixels: must not count
    assert end_point_error(prediction, truth, valid) == pytest.approx(5.0)
    assert math.isnan(end_point_error(prediction, truth, np.zeros((4, 4), dtype=bool)))
    with pytest.raises(ValueError):
        l1(np.zeros((2, 2)), np.zeros((2, 3)))


def test_l1_on_complementary_masks_adds_up_to_the_l1():
    prediction = np.zeros((2, 3, 3), dtype=np.float32)
    target = np.zeros_like(prediction)
    target[0, 0] = 0.6  # one pixel off by 0.6 in each channel: L1 = 3 * 0.6 / 18
    mask = np.zeros((2, 3), dtype=bool)
    mask[0, 0] = True
    assert l1_on_mask(prediction, target, mask) == pytest.approx(0.1)
    assert l1_on_mask(prediction, target, ~mask) == 0
    rng = np.random.default_rng(0)
    a, b, mask = rng.random((8, 8, 3)), rng.random((8, 8, 3)), rng.random((8, 8)) > 0.5
    assert l1_on_mask(a, b, mask) + l1_on_mask(a, b, ~mask) == pytest.approx(l1(a, b))
    with pytest.raises(ValueError, match="shapes differ"):
        l1_on_mask(a, b, mask[:4])


def rotation(degrees: float, scale: float = 1.0) -> np.ndarray:
    angle = np.radians(degrees)
    return scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])


def test_true_local_motion_is_the_part_motion_under_each_point_and_the_identity_elsewhere():
    # part 0 turns by 30° and grows 1.2x from the driving frame to the source; part 1 only moves across
    driving = np.array([np.hstack([rotation(10), [[20.0], [20.0]]]), np.hstack([np.eye(2), [[5.0], [5.0]]])])
    source = np.array([np.hstack([rotation(40, 1.2), [[25.0], [18.0]]]), np.hstack([np.eye(2), [[9.0], [1.0]]])])
    labels = np.zeros((32, 32), dtype=np.uint8)
    labels[15:25, 15:25] = 1
    labels[0:10, 0:10] = 2
    points = np.array([[20.2, 19.8], [4.0, 6.0], [28.0, 3.0], [-3.0, 40.0]])  # part 0, part 1, background, outside
    maps, on_subject = true_local_motion(source, driving, labels, points)
    assert on_subject.tolist() == [True, True, False, False]
    np.testing.assert_allclose(maps[0], rotation(30, 1.2), atol=1e-12)
    np.testing.assert_allclose(maps[1:], np.broadcast_to(np.eye(2), (3, 2, 2)), atol=1e-12)


def test_matrix_errors_are_frobenius_norms():
    truth = np.stack([np.eye(2), rotation(90)])
    predicted = np.stack([np.eye(2), np.eye(2)])
    np.testing.assert_allclose(matrix_errors(predicted, truth), [0.0, 2.0])  # |I - R(90°)| = sqrt(1+1+1+1)


def test_running_mean_weights_its_values():
    mean = RunningMean()
    assert math.isnan(mean.mean)
    mean.add(1.0, weight=3)
    mean.add(5.0)
    assert mean.mean == pytest.approx(2.0)


def test_normalized_to_pixels_follows_both_grid_sampling_conventions():
    corners = torch.tensor([[-1.0, -1.0], [1.0, 1.0]])
    assert normalized_to_pixels(corners, 5, 9, align_corners=True).tolist() == [[0, 0], [8, 4]]
    assert normalized_to_pixels(corners, 5, 9, align_corners=False).tolist() == [[-0.5, -0.5], [8.5, 4.5]]


@pytest.mark.parametrize("align_corners", [True, False])
def test_flow_from_the_identity_grid_is_zero_and_a_shifted_grid_gives_its_shift(align_corners):
    height, width = 12, 20
    grid = make_coordinate_grid(height, width)
    if not align_corners:  # the identity in that convention puts ±1 on the outer pixel edges
        grid = grid * torch.tensor([(width - 1) / width, (height - 1) / height])
    zero = flow_from_deformation(grid[None], (height, width), align_corners)
    assert zero.shape == (1, height, width, 2) and zero.abs().max() < 1e-5
    pixel = torch.tensor([2 / (width - 1), 2 / (height - 1)]) if align_corners else torch.tensor([2 / width, 2 / height])
    shifted = flow_from_deformation((grid + pixel * torch.tensor([3.0, -2.0]))[None], (height, width), align_corners)
    assert torch.allclose(shifted, torch.tensor([3.0, -2.0]).expand_as(shifted), atol=1e-4)


def test_flow_from_a_low_resolution_deformation_is_in_image_pixels():
    """A (16, 16) identity is zero flow at 64 px away from the clamped border; one cell of shift is 4 pixels."""
    grid = make_coordinate_grid(16, 16)[None]
    zero = flow_from_deformation(grid, (64, 64), align_corners=True)
    assert zero.shape == (1, 64, 64, 2) and zero[:, 2:-2, 2:-2].abs().max() < 1e-4
    shifted = flow_from_deformation(grid + torch.tensor([2 / 15, 0.0]), (64, 64), align_corners=True)
    assert torch.allclose(shifted[:, 2:-2, 2:-2], torch.tensor([4.0, 0.0]).expand(1, 60, 60, 2), atol=1e-4)


def test_the_true_flow_as_a_deformation_scores_zero_and_warps_frame_0_onto_frame_t(dataset):
    """Ties the conventions together: ground_truth_flow's direction, flow_from_deformation and warp agree."""
    clip = dataset / "test" / "clip_00004"
    truth = load_truth(clip.with_suffix(".npz"))
    frames = torch.from_numpy(read_clip(clip)).float().permute(0, 3, 1, 2)
    t = len(frames) - 1
    true_flow, _ = ground_truth_flow(truth, 0, t)
    valid = flow_visibility(truth, true_flow, 0, t)
    positions = make_coordinate_grid(64, 64)
    deformation = (positions + torch.from_numpy(true_flow) * 2 / 63)[None]
    predicted = flow_from_deformation(deformation, (64, 64), align_corners=True)[0].numpy()
    assert end_point_error(predicted, true_flow, valid) < 1e-4
    warped = warp(frames[:1], deformation, align_corners=True)[0]
    mask = torch.from_numpy(valid)
    warped_error = (warped - frames[t]).abs()[:, mask].mean()
    still_error = (frames[0] - frames[t]).abs()[:, mask].mean()
    assert warped_error < 0.5 * still_error


def test_keypoints_that_are_an_affine_function_of_the_joints_give_zero_error():
    rng = np.random.default_rng(1)
    joints = rng.uniform(0, 64, size=(40, 4, 2))
    mixing = rng.normal(size=(8, 10))  # 4 joints -> 5 keypoints: full column rank, so the map back exists
    keypoints = joints.reshape(40, 8) @ mixing + rng.normal(size=10)
    weights = fit_linear_map(keypoints[:30], joints[:30].reshape(30, 8))
    predicted = apply_linear_map(weights, keypoints[30:]).reshape(10, 4, 2)
    assert keypoint_error(predicted, joints[30:]) < 1e-8
    noisy = apply_linear_map(weights, keypoints[30:] + rng.normal(size=(10, 10))).reshape(10, 4, 2)
    assert keypoint_error(noisy, joints[30:]) > 0.01


# ------------------------------------------------------------------------------------------------ runner
def pairs(dataset: Path) -> list[dict[str, str]]:
    with open(dataset / "test" / "pairs.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_reconstruction_counts_every_frame_of_every_test_clip(result):
    assert result.reconstruction.videos == 2 and result.reconstruction.frames == 2 * OPTIONS.frames
    assert 0 < result.reconstruction.l1 < 1


def test_ground_truth_metrics_are_measured_on_synthetic_data(result):
    assert result.keypoints is not None and result.keypoints.frames == 2 * OPTIONS.frames
    assert result.keypoints.fit_frames == 4 * OPTIONS.frames  # every frame of the 4 train clips
    assert math.isfinite(result.keypoints.error_px) and result.keypoints.error_px >= 0
    assert result.flow is not None and result.flow.pixels > 0 and result.flow.epe >= 0
    motion = result.local_motion
    assert motion is not None and 0 < motion.on_subject <= 1 and motion.samples > 0
    assert motion.error >= 0 and motion.identity_error > 0  # the puppets' parts turn
    assert result.notes == []


def test_a_first_order_model_is_scored_by_its_jacobians_and_a_zeroth_order_one_by_the_identity(model, dataset):
    from animate_cli.config import config_from_yaml
    from tests.conftest import TINY_CONFIG_YAML

    zeroth_yaml = TINY_CONFIG_YAML.replace("estimate_jacobian: true", "estimate_jacobian: false")
    zeroth_model = perturbed_model(config_from_yaml(zeroth_yaml, name="tiny-zeroth"))
    first = evaluate(model, dataset, max_videos=1).local_motion
    zeroth = evaluate(zeroth_model, dataset, max_videos=1).local_motion
    assert first.error != pytest.approx(first.identity_error)
    assert zeroth.error == pytest.approx(zeroth.identity_error)


def test_animation_baselines_match_an_independent_computation(result, dataset):
    still, driving, still_on_subject = [], [], []
    for row in pairs(dataset):
        source = read_clip(dataset / row["source"])[0]
        driving_frames = read_clip(dataset / row["driving"])
        labels = np.load((dataset / row["target"]).with_suffix(".npz"))["labels"]
        for t, target in enumerate(read_clip(dataset / row["target"])):
            still.append(np.abs(source - target).mean())
            driving.append(np.abs(driving_frames[t] - target).mean())
            still_on_subject.append((np.abs(source - target).mean(axis=-1) * (labels[t] > 0)).mean())
    score = result.animation
    assert score is not None and score.pairs == 2 and score.frames == 2 * OPTIONS.frames
    assert score.still_source_l1 == pytest.approx(np.mean(still), abs=1e-6)
    assert score.driving_frame_l1 == pytest.approx(np.mean(driving), abs=1e-6)
    assert 0 < score.l1 < 1
    # the split by the targets' part labels: subject + background is the whole L1
    assert score.subject_l1 + score.background_l1 == pytest.approx(score.l1, abs=1e-6)
    assert score.still_source_subject_l1 == pytest.approx(np.mean(still_on_subject), abs=1e-6)


def test_json_has_the_documented_sections(result):
    found = json.loads(json.dumps(result.to_json()))
    assert set(found["reconstruction"]) == {"l1", "frames", "videos"}
    assert set(found["keypoints"]) >= {"error_px"} and set(found["flow"]) >= {"epe"}
    assert set(found["local_motion"]) == {"error", "identity_error", "on_subject", "samples"}
    assert set(found["animation"]) >= {"l1", "still_source_l1", "driving_frame_l1", "pairs"}
    assert found["split"] == "test" and found["notes"] == []


def test_report_writes_markdown_and_an_examples_grid(result, tmp_path):
    written = write_report(result, tmp_path / "report")
    assert {path.name for path in written} == {"report.md", "examples.png"}
    grid = np.asarray(Image.open(tmp_path / "report" / "examples.png"))
    assert grid.shape == (4 * 64, 4 * 64, 3)  # 2 clips + 2 pairs; source | driving | prediction | target
    assert "reconstruction L1" in (tmp_path / "report" / "report.md").read_text()


def test_max_videos_limits_clips_and_pairs(model, dataset):
    limited = evaluate(model, dataset, max_videos=1)
    assert limited.reconstruction.videos == 1 and limited.reconstruction.frames == OPTIONS.frames
    assert limited.animation.pairs == 1 and limited.keypoints.fit_frames == OPTIONS.frames


def test_data_without_ground_truth_gives_reconstruction_only(model, dataset, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(dataset / "test", bare / "test", ignore=shutil.ignore_patterns("*.npz", "pairs.csv"))
    found = evaluate(model, bare).to_json()
    assert set(found) == {"checkpoint", "data", "split", "reconstruction", "notes"}
    assert found["reconstruction"]["videos"] == 2


def test_frames_of_another_size_are_fitted_and_their_ground_truth_skipped_with_a_note(model, tmp_path):
    synthesize(tmp_path / "small", SynthOptions(size=48, videos=3, frames=3, seed=2))
    found = evaluate(model, tmp_path / "small")
    assert found.reconstruction.frames == 3 and found.keypoints is None and found.flow is None
    assert len(found.notes) == 1 and "48 px" in found.notes[0]


def test_a_bad_data_folder_is_refused_before_any_model_work(tmp_path):
    with pytest.raises(BadInputError, match="no such folder"):
        plan_evaluation(tmp_path / "missing")
    (tmp_path / "train").mkdir()
    with pytest.raises(BadInputError, match="no 'test' folder"):
        plan_evaluation(tmp_path)
    (tmp_path / "test").mkdir()
    with pytest.raises(BadInputError, match="no clips"):
        plan_evaluation(tmp_path)
