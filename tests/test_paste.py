"""Paste-back (``animate run --source-box``): only the box is animated, every other pixel stays the source's."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from animate_cli.cli import cli
from animate_cli.errors import BadInputError
from animate_cli.media.images import read_image
from animate_cli.media.resize import resize_frame
from animate_cli.paste import AUTO_MARGIN, Placement, feather_alpha, place_source
from tests.test_inspection import single_thread  # noqa: F401 - autouse fixture
from tests.test_pipeline import random_frames


def test_feather_is_one_inside_and_fades_to_the_edge():
    alpha = feather_alpha(20, 4)[..., 0]
    assert alpha.shape == (20, 20) and alpha.dtype == np.float32
    assert (alpha[4:16, 4:16] == 1).all()
    assert 0 < alpha[0, 0] < alpha[0, 10] < alpha[2, 10] < alpha[4, 10]
    assert np.array_equal(alpha, alpha[::-1]) and np.array_equal(alpha, alpha.T)


def test_paste_changes_only_the_square():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (50, 80, 3), dtype=np.uint8)
    placement = Placement(image, x=30, y=10, side=32)
    result = np.full((64, 64, 3), 7, np.uint8)
    pasted = placement.paste(result)
    outside = np.ones((50, 80), bool)
    outside[10:42, 30:62] = False
    assert pasted.shape == image.shape and np.array_equal(pasted[outside], image[outside])
    assert (pasted[20:32, 40:52] == 7).all()  # the middle is the result
    assert np.array_equal(placement.image, image)  # the source is left alone
    assert np.array_equal(placement.model_input(64), resize_frame(image[10:42, 30:62], (64, 64)))


def test_place_source_squares_boxes_and_refuses_boxes_off_the_image():
    image = np.zeros((60, 100, 3), np.uint8)
    assert (lambda p: (p.x, p.y, p.side))(place_source(image, (10, 20, 30, 30))) == (10, 20, 30)
    assert (lambda p: (p.x, p.y, p.side))(place_source(image, (10, 20, 40, 20))) == (10, 10, 40)
    with pytest.raises(BadInputError, match="outside"):
        place_source(image, (200, 0, 10, 10))
    auto = place_source(image, "auto", lambda picture: (40, 20, 60, 40))
    assert (auto.x, auto.y, auto.side) == (40 - 20 * AUTO_MARGIN, 20 - 20 * AUTO_MARGIN, 20 * (1 + 2 * AUTO_MARGIN))


@pytest.fixture
def scene(tmp_path):
    """A 120 x 90 source photo and a 6-frame driving folder of 64 x 64 PNGs."""
    source = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(source)
    driving = tmp_path / "driving"
    driving.mkdir()
    for index, frame in enumerate(random_frames(6, seed=7)):
        Image.fromarray(frame).save(driving / f"{index:02d}.png")
    return source, driving


def frames_in(folder):
    return [np.asarray(Image.open(path)) for path in sorted(folder.glob("*.png"))]


@pytest.mark.parametrize("box", ["20,10,50,50", "auto"])
def test_every_pixel_outside_the_box_stays_the_sources(tmp_path, scene, tiny_checkpoint, box):
    source, driving = scene
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(source), str(driving), "-o", f"{out}/", "-c", str(tiny_checkpoint),
                                      "--source-box", box, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["frames"] == 6
    photo = read_image(source)
    frames = frames_in(out)
    assert len(frames) == 6 and all(frame.shape == photo.shape for frame in frames)
    changed = np.zeros(photo.shape[:2], bool)
    for frame in frames:
        changed |= (frame != photo).any(axis=2)
    x, y, side = 20, 10, 50
    if box == "auto":  # the square around the model's keypoints on the whole (letterboxed) photo
        import torch

        from animate_cli.checkpoint import load_checkpoint
        from animate_cli.cropping import keypoint_box_finder, square_region

        subject = keypoint_box_finder(load_checkpoint(tiny_checkpoint), torch.device("cpu"))([photo])[0][0]
        x, y, side = square_region(subject, AUTO_MARGIN, 120, 90)  # square in a 120 x 90 photo: part of it
    ys, xs = np.nonzero(changed)
    assert len(ys) > 0  # the box is animated, and nothing outside it moved
    assert xs.min() >= x and xs.max() < x + side and ys.min() >= y and ys.max() < y + side


def test_side_by_side_with_paste_back_shows_the_full_source(tmp_path, scene, tiny_checkpoint):
    source, driving = scene
    out = tmp_path / "side"
    result = CliRunner().invoke(cli, ["run", str(source), str(driving), "-o", f"{out}/", "-c", str(tiny_checkpoint),
                                      "--source-box", "0,0,90,90", "--layout", "side-by-side"])
    assert result.exit_code == 0, result.output
    frame = frames_in(out)[0]
    assert frame.shape == (90, 120 + 90 + 120, 3)
    assert np.array_equal(frame[:, :120], read_image(source))


def test_a_box_off_the_source_is_one_line_and_exit_2(tmp_path, scene, tiny_checkpoint):
    source, driving = scene
    result = CliRunner().invoke(cli, ["run", str(source), str(driving), "-o", str(tmp_path / "o.mp4"),
                                      "-c", str(tiny_checkpoint), "--source-box", "500,500,10,10"])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {source}: --source-box: box 500,500,10,10 is outside the 120x90 image"
    result = CliRunner().invoke(cli, ["run", str(source), str(driving), "-c", str(tiny_checkpoint),
                                      "--source-box", "1,2"])
    assert result.exit_code == 2 and "x,y,w,h" in result.output
