"""Pictures of the motion: colours, coordinates, drawing, and the mask / occlusion / flow images."""

import colorsys

import numpy as np
import pytest

from animate_cli.visualize import (
    draw_keypoints,
    flow_image,
    gray_image,
    hsv_to_rgb,
    keypoint_colors,
    masks_image,
    normalized_to_pixels,
    resize_nearest,
)


def test_keypoint_colors_are_distinct_and_stable():
    colors = keypoint_colors(10)
    assert colors.shape == (10, 3) and colors.dtype == np.uint8
    assert len({tuple(c) for c in colors}) == 10
    assert np.array_equal(keypoint_colors(10), colors)
    assert np.array_equal(keypoint_colors(10)[:1], keypoint_colors(1))  # hue 0 first whatever the count


def test_normalized_to_pixels_puts_plus_minus_one_on_the_outer_pixel_centres():
    points = np.array([[-1, -1], [1, 1], [0, 0], [1, -1]])
    assert normalized_to_pixels(points, 64, 32).tolist() == [[0, 0], [63, 31], [31.5, 15.5], [63, 0]]


def test_keypoint_centres_keep_their_colour_under_axes_and_trails():
    image = np.full((64, 64, 3), 128, np.uint8)
    points = np.array([[10.0, 10.0], [14.0, 10.0], [40.0, 50.0]])  # the first two close: axes cross the neighbour
    jacobians = np.stack([np.eye(2) * 1.5, [[0.0, -1.0], [1.0, 0.0]], np.eye(2)])
    trails = [points + 3, points + 6]
    drawn = draw_keypoints(image, points, jacobians, trails=trails)
    colors = keypoint_colors(3)
    for k, (x, y) in enumerate(points):
        assert np.array_equal(drawn[int(y), int(x)], colors[k])
    assert np.array_equal(image, np.full((64, 64, 3), 128, np.uint8))  # drawn on a copy
    # the axes run from the keypoint: a pixel along the first one (x direction, 4 radii long) has its colour
    assert np.array_equal(drawn[50, 40 + 6], colors[2])
    # a trail dot where nothing else is drawn
    assert np.array_equal(drawn[56, 46], colors[2])


def test_points_off_the_image_are_clipped_not_an_error():
    drawn = draw_keypoints(np.zeros((16, 16, 3), np.uint8), np.array([[-50.0, 5.0], [15.5, 15.5]]))
    assert drawn[15, 15].any() and not drawn[5, 0].any()


def test_masks_image_mixes_slot_colours_with_a_black_background():
    mask = np.zeros((3, 4, 4))
    mask[0, :, :2] = 1  # background on the left
    mask[1, :, 2] = 1
    mask[2, :, 3] = 0.5
    mask[0, :, 3] = 0.5
    picture = masks_image(mask)
    colors = keypoint_colors(2)
    assert picture.shape == (4, 4, 3) and picture.dtype == np.uint8
    assert not picture[:, :2].any()
    assert np.array_equal(picture[0, 2], colors[0])
    assert np.abs(picture[0, 3].astype(int) - colors[1] / 2).max() <= 1


def test_gray_and_flow_images():
    assert gray_image(np.array([[0.0, 1.0, 0.5]])).tolist() == [[[0] * 3, [255] * 3, [128] * 3]]
    flow = np.zeros((2, 3, 2))
    flow[0, 1] = [0.1, 0.0]
    flow[0, 2] = [0.2, 0.0]
    flow[1, 0] = [0.0, 0.2]
    picture = flow_image(flow)
    assert np.array_equal(picture[1, 1], [255, 255, 255])  # no motion: white
    assert picture[0, 2].min() == 0 and picture[0, 1].min() == 128  # saturation grows with length
    assert not np.array_equal(picture[0, 2], picture[1, 0])  # hue follows direction
    assert np.array_equal(flow_image(flow, max_magnitude=0.1)[0, 2], picture[0, 2])  # clipped at the scale
    assert np.array_equal(flow_image(np.zeros((2, 2, 2))), np.full((2, 2, 3), 255))


@pytest.mark.parametrize("hue", [0.0, 0.1, 0.3, 0.5, 0.7, 0.95])
def test_hsv_to_rgb_matches_colorsys(hue):
    ours = hsv_to_rgb(np.array([hue]), np.array([0.6]), np.array([0.9]))[0]
    assert ours == pytest.approx(colorsys.hsv_to_rgb(hue, 0.6, 0.9))


def test_resize_nearest_repeats_pixels():
    image = np.arange(4, dtype=np.uint8).reshape(2, 2, 1).repeat(3, axis=2)
    big = resize_nearest(image, 4, 4)
    assert big[:, :, 0].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
