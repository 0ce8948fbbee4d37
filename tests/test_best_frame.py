"""Best reference frame: pose normalisation, the search, the demo's forward/backward equivalence, face-alignment."""

import importlib.machinery
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from animate_cli.best_frame import find_best_frames, normalized_pose, pose_distance, pose_finder, resolve_method
from animate_cli.errors import BadInputError
from animate_cli.landmarks import (
    DEFAULT_WEIGHT_FILES,
    FaceAnalyzer,
    face_alignment_available,
    missing_weights_message,
    require_face_alignment,
)
from animate_cli.motion import normalize_keypoints
from animate_cli.pipeline import Animator, MotionOptions, image_to_tensor, tensor_to_images
from tests.conftest import perturbed_model
from tests.test_inspection import single_thread  # noqa: F401 - autouse fixture
from tests.test_pipeline import random_frames

SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.5, 0.2]])


def test_poses_are_compared_without_position_and_scale():
    base = normalized_pose(SQUARE)
    assert np.allclose(base.mean(axis=0), 0)
    assert np.allclose(normalized_pose(SQUARE * 3.5 + [10, -4]), base)
    assert pose_distance(base, normalized_pose(SQUARE[:, ::-1])) > 0.01
    assert normalized_pose(np.array([[0, 0], [1, 1], [2, 2.0]])) is None  # collinear: no area


def poses_by_frame(poses):
    """A pose finder reading the pose a test assigned to each 'image' (images are just their own ids here)."""
    return lambda images: [poses[int(image)] for image in images]


def test_the_first_strictly_smallest_score_wins_and_frames_without_a_pose_are_skipped():
    twisted = SQUARE + [[0, 0], [0, 0.2], [0, 0], [0, 0], [0, 0]]
    poses = {0: SQUARE, 1: twisted, 2: None, 3: SQUARE * 2, 4: SQUARE + 7, 5: twisted}
    source_poses = {100: SQUARE, 101: twisted}
    finder = lambda images: [(source_poses | poses)[int(image)] for image in images]  # noqa: E731
    frames = [np.array(i) for i in range(6)]
    best = find_best_frames([np.array(100), np.array(101)], frames, finder, batch_size=4)
    assert [b.index for b in best] == [0, 1]  # frames 3 and 4 tie with 0 and frame 5 with 1: the first wins
    assert best[0].score == pytest.approx(0) and int(best[1].image) == 1


def test_a_pose_is_needed_in_the_source_and_in_some_frame():
    finder = poses_by_frame({0: None, 1: None, 2: SQUARE})
    with pytest.raises(BadInputError, match="face.png: no pose found"):
        find_best_frames([np.array(0)], [np.array(2)], finder, names=["face.png"])
    with pytest.raises(BadInputError, match="no driving frame shows a pose"):
        find_best_frames([np.array(2)], [np.array(0), np.array(1)], finder)


def test_keypoints_pick_the_driving_frame_that_is_the_source(tiny_config):
    animator = Animator(perturbed_model(tiny_config), torch.device("cpu"))
    frames = random_frames(7, seed=3)
    keypoint_poses = pose_finder("keypoints", animator, None)
    for chosen in (0, 4):
        best = find_best_frames([frames[chosen]], frames, keypoint_poses, batch_size=3)
        assert best[0].index == chosen and best[0].score < 1e-8
        assert np.array_equal(best[0].image, frames[chosen])


def demo_animation(model, source, driving):
    """demo.make_animation(relative=True, adapt_movement_scale=True), frame by frame as published."""
    device = torch.device("cpu")
    with torch.no_grad():
        source_t = image_to_tensor(source, device)
        kp_source = model.kp_detector(source_t)
        kp_initial = model.kp_detector(image_to_tensor(driving[0], device))
        out = []
        for frame in driving:
            kp = normalize_keypoints(kp_source, model.kp_detector(image_to_tensor(frame, device)), kp_initial,
                                     relative=True, adapt_movement_scale=True)
            out.append(tensor_to_images(model.generator(source_t, kp_source, kp).prediction)[0])
    return out


def test_the_demos_forward_backward_animation_equals_relative_motion_from_the_best_frame(tiny_config):
    model = perturbed_model(tiny_config, seed=2)
    source, *frames = random_frames(7, seed=5)
    best = 3
    forward = demo_animation(model, source, frames[best:])
    backward = demo_animation(model, source, frames[: best + 1][::-1])
    demo = np.stack(backward[::-1] + forward[1:])
    animator = Animator(model, torch.device("cpu"))
    ours = animator.animate([animator.prepare_source(source)], enumerate(frames), frames[best], MotionOptions(), 4)
    ours = np.stack([results[0] for _, results in ours])
    assert demo.shape == ours.shape == (6, 64, 64, 3)
    assert np.abs(demo.astype(int) - ours).max() <= 1  # batching changes float rounding only


# ------------------------------------------------------------------------------------------------ face-alignment
def test_the_missing_extra_is_one_clear_error():
    if face_alignment_available():
        pytest.skip("face-alignment is installed here")
    with pytest.raises(BadInputError) as caught:
        require_face_alignment("--best-frame-by landmarks")
    assert str(caught.value) == "--best-frame-by landmarks needs the optional extra: pip install 'animate-cli[face]'"
    with pytest.raises(BadInputError, match=r"--detector faces needs the optional extra"):
        FaceAnalyzer("cpu", None, "--detector faces")
    assert resolve_method(None) == resolve_method("auto") == "keypoints"


def test_the_missing_weights_message_names_the_files_and_the_folder():
    message = missing_weights_message(list(DEFAULT_WEIGHT_FILES), Path("/home/me/.cache/torch/hub/checkpoints"))
    assert "\n" not in message
    for part in ("s3fd-619a316812.pth", "2DFAN4-cd938726ad.zip", "/home/me/.cache/torch/hub/checkpoints",
                 "--landmarks-weights DIR"):
        assert part in message


def fake_face_alignment(enum_name, landmarks, fail=False):
    """A stand-in for the face_alignment package: the old (_2D) or new (TWO_D) enum, fixed landmarks."""
    module = types.ModuleType("face_alignment")
    module.__spec__ = importlib.machinery.ModuleSpec("face_alignment", None)  # "installed" for find_spec
    module.LandmarksType = types.SimpleNamespace(**{enum_name: "2d"})
    module.created = []

    class FaceAlignment:
        def __init__(self, landmarks_type, device, flip_input):
            if fail:
                raise OSError("could not download")
            checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
            module.created.append((landmarks_type, device, sorted(p.name for p in checkpoints.iterdir())))
            self.face_detector = types.SimpleNamespace(detect_from_image=lambda bgr: [[1, 2, 30, 40, 0.99]])

        def get_landmarks(self, image):
            return None if image.mean() < 1 else [landmarks]

    module.FaceAlignment = FaceAlignment
    return module


@pytest.fixture
def weights(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in DEFAULT_WEIGHT_FILES:
        (folder / name).write_bytes(b"weights")
    return folder


@pytest.mark.parametrize("enum_name", ["TWO_D", "_2D"])
def test_both_landmark_enums_and_a_weights_folder_work(monkeypatch, weights, enum_name):
    module = fake_face_alignment(enum_name, np.c_[SQUARE, np.zeros(5)])
    monkeypatch.setitem(sys.modules, "face_alignment", module)
    hub_before = torch.hub.get_dir()
    faces = FaceAnalyzer("cpu", weights, "--best-frame-by landmarks")
    assert module.created == [("2d", "cpu", sorted(DEFAULT_WEIGHT_FILES))]  # read from the folder given
    assert torch.hub.get_dir() == hub_before
    image = np.full((8, 8, 3), 200, np.uint8)
    assert np.array_equal(faces.landmarks(image), SQUARE)
    assert faces.landmarks(np.zeros((8, 8, 3), np.uint8)) is None
    assert faces.face_boxes(image) == [(1.0, 2.0, 30.0, 40.0)]
    assert resolve_method(None) == "landmarks"


def test_missing_weights_become_one_line(monkeypatch, tmp_path, weights):
    monkeypatch.setitem(sys.modules, "face_alignment", fake_face_alignment("TWO_D", SQUARE))
    (weights / DEFAULT_WEIGHT_FILES[1]).unlink()
    with pytest.raises(BadInputError, match=f"put {DEFAULT_WEIGHT_FILES[1]} in {weights}"):
        FaceAnalyzer("cpu", weights, "--best-frame-by landmarks")
    # not in the cache either, and the download fails
    monkeypatch.setitem(sys.modules, "face_alignment", fake_face_alignment("TWO_D", SQUARE, fail=True))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    with pytest.raises(BadInputError, match="s3fd-619a316812.pth and 2DFAN4-cd938726ad.zip in .*empty-hub"):
        FaceAnalyzer("cpu", None, "--best-frame-by landmarks")
