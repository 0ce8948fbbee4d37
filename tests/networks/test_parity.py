"""Numeric parity with the published implementation's outputs (../shared/reference/parity).

Tolerances from shared/README.md: keypoints and jacobians 1e-4, float frames 1e-3, PNG frames at most one level
on at most 0.1 % of values.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from animate_cli.checkpoint import load_checkpoint
from animate_cli.motion import normalize_keypoints
from tests.conftest import PARITY, reference_or_skip


def read_rgb(path):
    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


@pytest.fixture(scope="module")
def inputs():
    reference_or_skip(PARITY)
    source = read_rgb(PARITY / "inputs" / "source.png")
    driving = torch.cat([read_rgb(p) for p in sorted((PARITY / "inputs" / "driving").glob("*.png"))])
    return source, driving


@pytest.mark.parametrize("golden, align_corners", [("golden", False), ("golden-legacy", True)])
def test_relative_adapt_scale_matches_the_published_outputs(inputs, golden, align_corners):
    expected_dir = reference_or_skip(PARITY / golden / "small" / "rel_adapt")
    meta = json.loads((expected_dir / "meta.json").read_text())
    source, driving = inputs
    assert len(driving) == meta["n_frames"]
    model = load_checkpoint(PARITY / "small.pth.tar", config=PARITY / "small.yaml", align_corners=align_corners)
    with torch.no_grad():
        kp_source = model.kp_detector(source)
        kp_driving = model.kp_detector(driving)
        kp_norm = normalize_keypoints(kp_source, kp_driving, kp_driving[0], adapt_movement_scale=True)
        prediction = model.generator.animate(model.generator.encode_source(source), kp_source, kp_norm).prediction

    def expected(name, shape):
        return np.load(expected_dir / f"{name}.npy").reshape(shape)

    k = model.config.model_params.common_params.num_kp
    np.testing.assert_allclose(kp_source.value.numpy(), expected("kp_source_value", (1, k, 2)), atol=1e-4)
    np.testing.assert_allclose(kp_source.jacobian.numpy(), expected("kp_source_jacobian", (1, k, 2, 2)), atol=1e-4)
    np.testing.assert_allclose(kp_driving.value.numpy(), expected("kp_driving_value", (-1, k, 2)), atol=1e-4)
    np.testing.assert_allclose(kp_norm.value.numpy(), expected("kp_norm_value", (-1, k, 2)), atol=1e-4)
    np.testing.assert_allclose(kp_norm.jacobian.numpy(), expected("kp_norm_jacobian", (-1, k, 2, 2)), atol=1e-4)

    frames = prediction.permute(0, 2, 3, 1).numpy()
    float_frames = np.load(expected_dir / "pred_f32_frames.npy").reshape(len(meta["f32_frames"]), *frames.shape[1:])
    np.testing.assert_allclose(frames[meta["f32_frames"]], float_frames, atol=1e-3)

    ours = np.round(frames * 255).astype(np.int16)  # img_as_ubyte: round half to even of x·255
    theirs = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted((expected_dir / "pred").glob("*.png"))])
    difference = np.abs(ours - theirs.astype(np.int16))
    assert difference.max() <= 1
    assert (difference > 0).mean() <= 0.001


def test_intermediates_of_frame_8(inputs):
    expected = np.load(reference_or_skip(PARITY / "golden" / "small" / "rel_adapt" / "intermediates_frame08.npz"))
    source, driving = inputs
    model = load_checkpoint(PARITY / "small.pth.tar", config=PARITY / "small.yaml", align_corners=False)
    with torch.no_grad():
        kp_source = model.kp_detector(source)
        kp_driving = model.kp_detector(driving)
        kp_norm = normalize_keypoints(kp_source, kp_driving[8], kp_driving[0], adapt_movement_scale=True)
        out = model.generator(source, kp_source, kp_norm, with_deformed=True, keep_sparse_deformed=True)
    ours = {
        "mask": out.motion.mask, "occlusion_map": out.motion.occlusion_map, "deformation": out.motion.deformation,
        "sparse_deformed": out.motion.sparse_deformed, "deformed": out.deformed,
    }
    for name, tensor in ours.items():
        np.testing.assert_allclose(tensor.numpy(), expected[name], atol=1e-3, err_msg=name)


def test_published_checkpoints_default_to_the_training_time_convention():
    model = load_checkpoint(reference_or_skip(PARITY / "small.pth.tar"), config=PARITY / "small.yaml")
    assert model.align_corners is True
    assert model.generator.dense_motion_network.align_corners is True
