"""Keypoint export and motion panels (``animate keypoints`` as a library)."""

import json

import numpy as np
import pytest
import torch

from animate_cli.errors import BadInputError
from animate_cli.inspection import (
    PANELS,
    InspectRequest,
    KeypointLog,
    MotionPicture,
    check_inspect_inputs,
    detect_keypoints,
    pixel_scale,
)
from animate_cli.visualize import normalized_to_pixels
from tests.conftest import perturbed_model
from tests.test_pipeline import random_frames


@pytest.fixture(autouse=True)
def single_thread():
    """One torch thread: the test machines' cores are shared, where two threads run several times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def model():
    from animate_cli.config import config_from_yaml
    from tests.conftest import TINY_CONFIG_YAML

    return perturbed_model(config_from_yaml(TINY_CONFIG_YAML, name="tiny"))


def test_detect_keypoints_adds_the_heatmap_covariance(model):
    frames = random_frames(3)
    kp = detect_keypoints(model, frames, torch.device("cpu"))
    assert kp.value.shape == (3, 5, 2) and kp.jacobian.shape == kp.covariance.shape == (3, 5, 2, 2)
    assert torch.allclose(kp.covariance, kp.covariance.transpose(-1, -2))
    assert (torch.linalg.eigvalsh(kp.covariance) >= -1e-6).all()  # a covariance: symmetric, positive
    with torch.no_grad():
        plain = model.kp_detector(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255)
    assert torch.allclose(plain.value, kp.value, atol=1e-6)


def test_json_and_npz_hold_the_same_keypoints(model, tmp_path):
    frames = random_frames(4)
    kp = detect_keypoints(model, frames, torch.device("cpu"))
    log = KeypointLog("tiny.safetensors", 64)
    for index in range(4):
        log.add(index, index / 25, kp[index])
    log.write(tmp_path / "kp.json")
    log.write(tmp_path / "kp.npz")
    data = json.loads((tmp_path / "kp.json").read_text())
    arrays = np.load(tmp_path / "kp.npz")
    assert data["checkpoint"] == "tiny.safetensors" and data["size"] == 64 and len(data["frames"]) == 4
    assert str(arrays["checkpoint"]) == "tiny.safetensors" and int(arrays["size"]) == 64
    assert arrays["index"].tolist() == [0, 1, 2, 3] and arrays["time"] == pytest.approx([0, 0.04, 0.08, 0.12])
    assert arrays["keypoints"].shape == (4, 5, 2) and arrays["jacobian"].shape == (4, 5, 2, 2)
    assert np.allclose(arrays["keypoints"], normalized_to_pixels(kp.value.numpy(), 64, 64), atol=1e-4)
    for frame, index in zip(data["frames"], range(4)):
        assert frame["index"] == index and frame["time"] == pytest.approx(index / 25)
        for k, point in enumerate(frame["keypoints"]):
            assert [point["x"], point["y"]] == pytest.approx(arrays["keypoints"][index, k], abs=1e-4)
            assert [point["x_norm"], point["y_norm"]] == pytest.approx(arrays["keypoints_norm"][index, k], abs=1e-6)
            assert np.allclose(point["jacobian"], arrays["jacobian"][index, k], atol=1e-6)
            assert np.allclose(point["covariance"], arrays["covariance"][index, k], atol=1e-6)
    assert pixel_scale(64) == 31.5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # written atomically


def test_zeroth_order_export_has_no_jacobians(tmp_path, tiny_config):
    from dataclasses import replace

    common = replace(tiny_config.model_params.common_params, estimate_jacobian=False)
    config = replace(tiny_config, model_params=replace(tiny_config.model_params, common_params=common))
    kp = detect_keypoints(perturbed_model(config), random_frames(1), torch.device("cpu"))
    log = KeypointLog(None, 64)
    log.add(0, 0.0, kp)
    assert log.to_json()["frames"][0]["keypoints"][0]["jacobian"] is None
    assert "jacobian" not in log.arrays()


def test_panels_show_no_motion_at_the_reference_frame(model):
    frames = random_frames(3, seed=1)
    source = random_frames(1, seed=2)[0]
    picture = MotionPicture(model, torch.device("cpu"), 64, trails=2, source=source, panels=PANELS)
    kp = detect_keypoints(model, frames, torch.device("cpu"))
    rows = picture.draw(frames, kp)
    assert [row.shape for row in rows] == [(64, 64 * 6, 3)] * 3
    flow = rows[0][:, 64 * 3:64 * 4]
    assert (flow == 255).all()  # the first frame is the reference: the source maps onto itself, no flow
    assert not (rows[2][:, 64 * 3:64 * 4] == 255).all()
    # the result panel is what the animator renders for that frame
    from animate_cli.pipeline import Animator, MotionOptions

    animator = Animator(model, torch.device("cpu"))
    rendered = list(animator.animate([animator.prepare_source(source)], enumerate(frames), None, MotionOptions(), 3))
    assert np.abs(rows[2][:, 64 * 5:].astype(int) - rendered[2][1][0]).max() <= 1


def test_without_a_source_only_the_keypoints_are_drawn(model):
    frames = random_frames(2)
    picture = MotionPicture(model, torch.device("cpu"), 64, trails=0, source=None, panels=())
    rows = picture.draw(frames, detect_keypoints(model, frames, torch.device("cpu")))
    assert [row.shape for row in rows] == [(64, 64, 3)] * 2


def request(tmp_path, **changes):
    from PIL import Image

    image = tmp_path / "still.png"
    Image.fromarray(random_frames(1)[0]).save(image)
    fields = {"input": image, "data_output": tmp_path / "kp.json", "visual_output": None}
    fields.update(changes)
    return InspectRequest(**fields)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"data_output": "kp.csv"}, "as .json or .npz"),
        ({"panels": ("flow",)}, "add --source"),
        ({"panels": ("flow", "wind"), "source": "still.png"}, "unknown panel 'wind'"),
        ({"visual_output": "kp.txt"}, "unsupported output type"),
        ({"input": "missing.mp4"}, "no such file"),
        ({"data_output": "nowhere/kp.json"}, "does not exist"),
    ],
)
def test_bad_requests_are_refused_before_any_work(tmp_path, changes, message):
    changes = {k: (tmp_path / v if isinstance(v, str) and k != "visual_output" else v) for k, v in changes.items()}
    if "visual_output" in changes:
        changes["visual_output"] = str(tmp_path / changes["visual_output"])
    with pytest.raises(BadInputError, match=message):
        check_inspect_inputs(request(tmp_path, **changes))


def test_existing_outputs_need_overwrite(tmp_path):
    (tmp_path / "kp.json").write_text("{}")
    with pytest.raises(BadInputError, match="exists"):
        check_inspect_inputs(request(tmp_path))
    check_inspect_inputs(request(tmp_path, overwrite=True))
