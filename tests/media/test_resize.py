"""Fitting images into the model's square: crop, pad, stretch, boxes, anti-aliasing, exact identity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from animate_cli.errors import MediaError
from animate_cli.media.resize import FIT_MODES, fit_image, resize_frame


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", FIT_MODES)
def test_right_size_without_box_is_returned_bit_identical(mode: str) -> None:
    image = noise(64, 64)
    result = fit_image(image, 64, mode)
    np.testing.assert_array_equal(result, image)
    assert np.shares_memory(result, image)  # not even resampled and copied


def test_crop_keeps_the_centre_square() -> None:
    image = np.zeros((50, 100, 3), dtype=np.uint8)
    image[:, :25] = 255  # left band, cut away
    image[:, 75:] = 255  # right band, cut away
    image[:, 25:75] = (10, 20, 30)
    result = fit_image(image, 50, "crop")
    assert result.shape == (50, 50, 3)
    assert (result == (10, 20, 30)).all()


def test_pad_letterboxes_with_the_pad_colour() -> None:
    image = np.full((50, 100, 3), (10, 20, 30), dtype=np.uint8)
    result = fit_image(image, 64, "pad", pad_color=(1, 2, 3))
    assert result.shape == (64, 64, 3)
    assert (result[:15] == (1, 2, 3)).all() and (result[-15:] == (1, 2, 3)).all()
    assert (result[17:47] == (10, 20, 30)).all()


def test_stretch_ignores_the_aspect_ratio() -> None:
    image = np.zeros((50, 100, 3), dtype=np.uint8)
    image[:, 50:] = 200
    result = fit_image(image, 32, "stretch")
    assert result.shape == (32, 32, 3)
    assert (result[:, :15] == 0).all() and (result[:, 17:] == 200).all()


def test_box_is_cut_first() -> None:
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    image[10:30, 40:60] = 255
    result = fit_image(image, 20, "crop", box=(40, 10, 20, 20))
    assert (result == 255).all()


def test_box_is_clamped_to_the_image() -> None:
    image = noise(40, 40)
    result = fit_image(image, 20, "stretch", box=(30, 30, 50, 50))
    np.testing.assert_array_equal(result, resize_frame(image[30:, 30:], (20, 20)))


def test_box_outside_the_image_is_refused() -> None:
    with pytest.raises(MediaError, match=r"box 50,0,10,10 is outside the 40x30 image"):
        fit_image(noise(30, 40), 16, "crop", box=(50, 0, 10, 10))


def test_empty_box_is_refused() -> None:
    with pytest.raises(MediaError, match="is empty"):
        fit_image(noise(30, 40), 16, "crop", box=(0, 0, 0, 10))


def test_downsampling_is_anti_aliased() -> None:
    # One-pixel checkerboard: point sampling would give pure black or white, averaging gives grey.
    board = ((np.indices((256, 256)).sum(axis=0) % 2) * 255).astype(np.uint8)
    result = fit_image(np.repeat(board[:, :, None], 3, axis=2), 32, "crop")
    assert np.abs(result.astype(int) - 127.5).max() < 8


def test_resize_frame_identity_and_size() -> None:
    image = noise(30, 40)
    assert resize_frame(image, (40, 30)) is image
    assert resize_frame(image, (80, 20)).shape == (20, 80, 3)


def test_malformed_input_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="uint8"):
        fit_image(np.zeros((4, 4, 3), dtype=np.float32), 2)
    with pytest.raises(ValueError, match="mode"):
        fit_image(noise(4, 4), 2, "zoom")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        fit_image(noise(4, 4), 0)


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 80),
    width=st.integers(1, 80),
    size=st.integers(1, 64),
    mode=st.sampled_from(FIT_MODES),
)
def test_any_image_fits_any_square(height: int, width: int, size: int, mode: str) -> None:
    result = fit_image(noise(height, width), size, mode)  # type: ignore[arg-type]
    assert result.shape == (size, size, 3) and result.dtype == np.uint8
