"""`animate keypoints` end to end with the tiny model: JSON / NPZ export, the overlay, the motion panels, errors."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from animate_cli.cli import cli
from animate_cli.media.video import probe
from animate_cli.visualize import keypoint_colors
from tests.media.conftest import make_video
from tests.test_inspection import single_thread  # noqa: F401 - autouse fixture
from tests.test_pipeline import random_frames


def invoke(*args):
    return CliRunner().invoke(cli, ["keypoints", *[str(a) for a in args]])


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def folder(tmp_path):
    """Six 64 x 64 PNG frames (the tiny model's size: no resampling, lossless)."""
    path = tmp_path / "frames"
    path.mkdir()
    for index, frame in enumerate(random_frames(6, seed=11)):
        Image.fromarray(frame).save(path / f"{index:02d}.png")
    return path


def test_the_overlay_shows_each_keypoint_where_the_json_says(tmp_path, folder, tiny_checkpoint):
    result = invoke(folder, "-o", tmp_path / "kp.json", "--visualize", f"{tmp_path / 'shown'}/", "-c", tiny_checkpoint,
                    "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["frames"] == 6 and summary["keypoints"] == str(tmp_path / "kp.json")
    data = json.loads((tmp_path / "kp.json").read_text())
    assert data["size"] == 64 and data["checkpoint"] == str(tiny_checkpoint)
    assert [frame["index"] for frame in data["frames"]] == list(range(6))
    assert [frame["time"] for frame in data["frames"]] == pytest.approx([i / 25 for i in range(6)])
    shown = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "shown").glob("*.png"))]
    assert len(shown) == 6
    colors = keypoint_colors(5)
    checked = 0
    for frame, picture in zip(data["frames"], shown):
        points = [(point["x"], point["y"]) for point in frame["keypoints"]]
        for k, (x, y) in enumerate(points):
            # a later keypoint's disc (radius 2) may cover this one's centre; otherwise it shows its colour
            if any(np.hypot(x - u, y - v) < 4 for u, v in points[k + 1:]):
                continue
            assert np.array_equal(picture[round(y), round(x)], colors[k]), (frame["index"], k)
            checked += 1
            assert point_in_range(frame["keypoints"][k])
    assert checked >= 2 * len(shown)  # the last keypoint of each frame at least (nothing covers it)


def point_in_range(point):
    """Pixel and normalised coordinates agree (±1 = the centres of pixels 0 and 63)."""
    return point["x"] == pytest.approx((point["x_norm"] + 1) * 31.5, abs=1e-3) and len(point["covariance"]) == 2


def test_npz_holds_the_same_numbers_as_json(tmp_path, folder, tiny_checkpoint):
    assert invoke(folder, "-o", tmp_path / "kp.json", "-c", tiny_checkpoint).exit_code == 0
    result = invoke(folder, "-o", tmp_path / "kp.npz", "-c", tiny_checkpoint, "--quiet")
    assert result.exit_code == 0 and result.output == ""
    data = json.loads((tmp_path / "kp.json").read_text())
    arrays = np.load(tmp_path / "kp.npz")
    pixels = np.array([[[p["x"], p["y"]] for p in frame["keypoints"]] for frame in data["frames"]])
    assert np.allclose(arrays["keypoints"], pixels, atol=1e-3)
    jacobians = np.array([[p["jacobian"] for p in frame["keypoints"]] for frame in data["frames"]])
    assert np.allclose(arrays["jacobian"], jacobians, atol=1e-5)


def test_an_image_gets_a_png_and_default_names(tmp_path, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Image.fromarray(random_frames(1)[0]).save(tmp_path / "face.png")
    result = invoke("face.png", "--visualize", "-c", tiny_checkpoint)
    assert result.exit_code == 0, result.output
    assert np.asarray(Image.open(tmp_path / "face_keypoints.png")).shape == (64, 64, 3)
    assert not (tmp_path / "face_keypoints.json").exists()  # only the picture was asked for
    assert invoke("face.png", "-c", tiny_checkpoint).exit_code == 0
    assert len(json.loads((tmp_path / "face_keypoints.json").read_text())["frames"]) == 1


def test_motion_panels_beside_a_video(tmp_path, tiny_checkpoint):
    clip = make_video(tmp_path / "talk.mp4", frames=8, size=(64, 48))
    Image.fromarray(random_frames(1, seed=3)[0]).save(tmp_path / "face.png")
    out = tmp_path / "panels.mp4"
    result = invoke(clip, "--source", tmp_path / "face.png", "--show", "masks,occlusion,flow,deformed",
                    "--visualize", out, "--trails", "3", "--fit", "pad", "-c", tiny_checkpoint)
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert (info.width, info.height, info.frame_count) == (64 * 5, 64, 8)
    assert not (tmp_path / "talk_keypoints.json").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["-o", "kp.txt"], "as .json or .npz"),
        (["--show", "flow"], "add --source"),
        (["--source", "face.png", "--show", "flow,wind"], "unknown panel 'wind'"),
        (["--visualize", "shown.png"], "shown as a video"),
        (["-o", "exists.json"], r"exists \(use --overwrite\)"),
        (["--source", "missing.png"], "no such file"),
    ],
)
def test_bad_inputs_give_one_line_and_exit_2(tmp_path, folder, tiny_checkpoint, monkeypatch, extra, message):
    import re

    monkeypatch.chdir(tmp_path)
    Image.fromarray(random_frames(1)[0]).save(tmp_path / "face.png")
    (tmp_path / "exists.json").write_text("{}")
    result = invoke(folder, "-c", tiny_checkpoint, *extra)
    assert result.exit_code == 2, result.output
    assert re.search(message, one_error_line(result))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.json", "face.png", "frames", "tiny.safetensors"]


def test_a_missing_input_is_one_line(tmp_path, tiny_checkpoint):
    result = invoke(tmp_path / "nope.mp4", "-c", tiny_checkpoint)
    assert result.exit_code == 2 and "no such file" in one_error_line(result)


def test_help_loads_no_heavy_module():
    import subprocess
    import sys

    code = ("import sys; from animate_cli.cli import main; sys.argv = ['animate', 'keypoints', '--help']\n"
            "try:\n    main()\nexcept SystemExit: pass\n"
            "assert not any(m in sys.modules for m in ('numpy', 'torch', 'av', 'PIL'))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
