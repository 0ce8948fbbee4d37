"""The puppet model: its ground truth must agree with its own renders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from animate_cli.data import puppets

SIZE = 96
FLOW_SIZE = 128  # big enough that thin limbs keep an interior once 2 px of edge are dropped


def make_clip(seed: int, frames: int = 12, size: int = SIZE):
    rng = np.random.default_rng(seed)
    identity = puppets.sample_identity(rng)
    motion = puppets.sample_motion(rng, frames, fps=25.0)
    images, truth = puppets.render_clip(identity, motion, size)
    return identity, motion, images, truth


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample ``image`` (H, W, 3) bilinearly at ``p + flow(p)`` with torch, as a model would."""
    height, width = flow.shape[:2]
    x = np.arange(width)[None, :] + flow[..., 0]
    y = np.arange(height)[:, None] + flow[..., 1]
    grid = np.stack([2.0 * x / (width - 1) - 1.0, 2.0 * y / (height - 1) - 1.0], axis=-1)
    source = torch.from_numpy(image).permute(2, 0, 1)[None].double()
    warped = torch.nn.functional.grid_sample(
        source, torch.from_numpy(grid)[None], mode="bilinear", align_corners=True
    )
    return warped[0].permute(1, 2, 0).numpy()


def interior(labels: np.ndarray) -> np.ndarray:
    """Pixels at least 2 px from any label boundary (a 5x5 window sees one label)."""
    return ndimage.minimum_filter(labels, 5) == ndimage.maximum_filter(labels, 5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_flow_warps_first_frame_onto_later_frames(seed):
    _, _, images, truth = make_clip(seed, size=FLOW_SIZE)
    labels = truth["labels"]
    warp_errors, still_errors = [], []
    for t in (4, 8, 11):
        flow, valid = puppets.ground_truth_flow(truth, 0, t)
        assert flow.shape == (FLOW_SIZE, FLOW_SIZE, 2) and flow.dtype == np.float32
        assert np.array_equal(valid, labels[t] > 0)
        assert not flow[~valid].any()
        # compare where the point is visible in both frames and away from part edges in both
        visible = puppets.flow_visibility(truth, flow, 0, t)
        x = np.clip(np.rint(np.arange(FLOW_SIZE)[None, :] + flow[..., 0]).astype(int), 0, FLOW_SIZE - 1)
        y = np.clip(np.rint(np.arange(FLOW_SIZE)[:, None] + flow[..., 1]).astype(int), 0, FLOW_SIZE - 1)
        mask = visible & interior(labels[t]) & interior(labels[0])[y, x]
        assert mask.sum() > 150
        target = images[t].astype(np.float64)
        warp_error = np.abs(warp(images[0], flow) - target).mean(axis=-1)[mask].mean()
        still_error = np.abs(images[0] - target).mean(axis=-1)[mask].mean()
        # bilinear interpolation of textures with >= 8 px wavelengths stays within a few levels of 255
        assert warp_error < 3.0, (t, warp_error)
        warp_errors.append(warp_error)
        still_errors.append(still_error)
    assert np.mean(warp_errors) < 0.2 * np.mean(still_errors)


def test_flow_is_zero_for_the_same_frame_and_follows_each_pixels_part():
    _, _, _, truth = make_clip(5)
    flow, valid = puppets.ground_truth_flow(truth, 3, 3)
    assert np.abs(flow).max() < 1e-4 and valid.any()
    # pixel (row y, column x) showing part k maps by that part's transforms: checks the x/y order and labels
    flow, valid = puppets.ground_truth_flow(truth, 0, 6)
    labels, affines = truth["labels"][6], truth["affines"]
    for label in np.unique(labels[labels > 0]):
        ys, xs = np.nonzero(labels == label)
        y, x = ys[len(ys) // 2], xs[len(xs) // 2]
        to_frame = np.vstack([affines[6, label - 1], [0.0, 0.0, 1.0]])
        expected = affines[0, label - 1] @ np.linalg.inv(to_frame) @ np.array([x, y, 1.0])
        np.testing.assert_allclose(flow[y, x], expected - [x, y], atol=1e-4)


def test_joints_are_canonical_points_moved_by_their_parts():
    identity, _, _, truth = make_clip(6)
    parts, points = puppets.joint_anchors(identity)
    assert len(parts) == len(puppets.JOINT_NAMES) == 15
    affines, joints = truth["affines"], truth["joints"]
    lengths = identity.lengths
    for t in range(len(joints)):
        moved = np.einsum("jab,jb->ja", affines[t, parts, :, :2], points) + affines[t, parts, :, 2]
        np.testing.assert_allclose(joints[t], moved, atol=1e-9)
        # limbs are attached: a distal segment's origin is its proximal segment's end point
        for upper, lower, joint in ((2, 3, "elbow_l"), (4, 5, "elbow_r"), (6, 7, "knee_l"), (8, 9, "knee_r")):
            end = affines[t, upper] @ np.array([0.0, lengths[upper], 1.0])
            np.testing.assert_allclose(joints[t, puppets.JOINT_NAMES.index(joint)], end, atol=1e-9)
        # the head sits on the torso's top centre
        neck = affines[t, puppets.TORSO] @ np.array([0.0, -lengths[puppets.TORSO] / 2.0, 1.0])
        np.testing.assert_allclose(joints[t, puppets.JOINT_NAMES.index("neck")], neck, atol=1e-9)


def test_motion_stays_within_joint_limits_and_mostly_in_frame():
    for seed in range(10):
        _, motion, _, truth = make_clip(seed, frames=40, size=64)
        low, high = puppets.ANGLE_LIMITS[:, 0], puppets.ANGLE_LIMITS[:, 1]
        assert np.all(motion.angles >= low) and np.all(motion.angles <= high)
        inside = (truth["joints"] >= 0) & (truth["joints"] <= 63)
        assert inside.all(axis=-1).mean() > 0.9
        # smooth: a joint moves a few pixels at most between frames at 25 fps
        assert np.abs(np.diff(truth["joints"], axis=0)).max() < 6.0


def test_render_is_anti_aliased_and_labels_follow_depth_order():
    identity, motion, images, truth = make_clip(7, frames=2, size=128)
    image, labels = puppets.render(identity, motion.pose(1), 128)
    np.testing.assert_array_equal(image, images[1])
    np.testing.assert_array_equal(labels, truth["labels"][1])
    assert image.dtype == np.uint8 and image.shape == (128, 128, 3) and labels.dtype == np.uint8
    # every part is drawn, and where two parts overlap the one later in depth order wins
    assert set(np.unique(labels)) <= set(range(puppets.NUM_PARTS + 1))
    depth = {part + 1: rank for rank, part in enumerate(puppets.DEPTH_ORDER)}
    torso, front_arm, back_arm = 1, 3, 5
    assert depth[front_arm] > depth[torso] > depth[back_arm]
    # the soft edge blends: background-adjacent subject pixels take intermediate values
    background = puppets.background_image(identity, 128)
    edge = (labels == 0) & ndimage.binary_dilation(labels > 0)
    differs = np.abs(image[edge].astype(float) / 255.0 - background[edge]).max(axis=-1) > 2 / 255
    assert differs.mean() > 0.2


def test_occlusion_front_arm_over_torso_over_back_arm():
    """Swing both straight arms across the torso: the front arm shows there, the back arm is hidden."""
    identity = puppets.sample_identity(np.random.default_rng(8))
    angles = puppets.ANGLE_LIMITS.mean(axis=1)
    angles[1:5] = (-0.5, 0.0, 0.5, 0.0)  # shoulders swing inwards, elbows straight
    pose = puppets.Pose(angles, np.array([0.5, 0.4]), 0.0, 0.3)
    _, labels = puppets.render(identity, pose, 128)
    affines = puppets.part_affines(identity, pose, 128)
    torso_inverse = np.linalg.inv(np.vstack([affines[puppets.TORSO], [0.0, 0.0, 1.0]]))
    half = np.array([identity.widths[puppets.TORSO], identity.lengths[puppets.TORSO]]) / 2.0
    for arm, expected in ((2, 3), (4, 1)):  # front upper arm (label 3) shows; the back one is under the torso
        point = affines[arm] @ np.array([0.0, identity.lengths[arm] * 0.8, 1.0])
        local = (torso_inverse @ np.array([*point, 1.0]))[:2]
        assert ((local / half) ** 2).sum() < 0.8  # well inside the torso, whatever its shape
        x, y = np.rint(point).astype(int)
        assert labels[y, x] == expected


def test_identity_round_trips_through_json():
    identity, motion, images, _ = make_clip(9, frames=1, size=64)
    again = puppets.Identity.from_json(identity.to_json())
    image, _ = puppets.render(again, motion.pose(0), 64)
    np.testing.assert_array_equal(image, images[0])


def test_relative_motion_transfers_deltas_onto_the_source():
    source_identity, source_motion, source_images, _ = make_clip(10)
    _, driving_motion, _, driving_truth = make_clip(11)
    motion = puppets.relative_motion(source_motion.pose(0), driving_motion)
    images, truth = puppets.render_clip(source_identity, motion, SIZE)
    # frame 0 is exactly the source's own frame 0
    np.testing.assert_array_equal(images[0], source_images[0])
    assert len(images) == len(driving_motion)
    # the rendered geometry carries the driving clip's joint-angle deltas: each part's rotation relative to its
    # parent, read back from the affines, changes exactly as in the driving clip
    def relative_angles(affines):
        angles = np.arctan2(affines[..., 1, 0], affines[..., 0, 0])
        parents = np.array(puppets.PARENTS[1:])
        return np.angle(np.exp(1j * (angles[:, 1:] - angles[:, parents])))

    target_delta = relative_angles(truth["affines"]) - relative_angles(truth["affines"])[:1]
    driving_delta = relative_angles(driving_truth["affines"]) - relative_angles(driving_truth["affines"])[:1]
    np.testing.assert_allclose(np.angle(np.exp(1j * (target_delta - driving_delta))), 0.0, atol=1e-9)
    # global: torso translation delta (as image fractions), rotation delta and scale ratio follow the driver
    torso = truth["affines"][:, puppets.TORSO]
    driving_torso = driving_truth["affines"][:, puppets.TORSO]
    np.testing.assert_allclose(
        torso[:, :, 2] - torso[0, :, 2], driving_torso[:, :, 2] - driving_torso[0, :, 2], atol=1e-9
    )
    scale = np.hypot(torso[:, 0, 0], torso[:, 1, 0])
    driving_scale = np.hypot(driving_torso[:, 0, 0], driving_torso[:, 1, 0])
    np.testing.assert_allclose(scale / scale[0], driving_scale / driving_scale[0], rtol=1e-12)
    # the identity (colours, textures, proportions) is the source's
    assert truth["identity"] == source_identity.to_json()
