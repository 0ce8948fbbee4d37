"""Pictures of the motion: keypoints drawn on frames, motion masks, occlusion and flow as images.

Pure numpy on uint8 (H, W, 3) images; coordinates here are pixels (x right, y down), pixel centres at integers.
"""

from __future__ import annotations

import colorsys

import numpy as np


def keypoint_colors(count: int) -> np.ndarray:
    """A fixed, distinct colour per keypoint index: (count, 3) uint8, hues spread around the wheel."""
    hues = np.arange(count) / max(count, 1)
    return np.array([[round(255 * c) for c in colorsys.hsv_to_rgb(h, 0.85, 1.0)] for h in hues], dtype=np.uint8)


def normalized_to_pixels(points: np.ndarray, width: int, height: int) -> np.ndarray:
    """(..., 2) (x, y) on [-1, 1] with ±1 at the outer pixel centres -> pixel coordinates."""
    scale = np.array([(width - 1) / 2, (height - 1) / 2])
    return (np.asarray(points, dtype=np.float64) + 1) * scale


def draw_disc(image: np.ndarray, center: tuple[float, float], radius: float, color: np.ndarray) -> None:
    """Fill a disc in place (pixels whose centre lies within ``radius``)."""
    height, width = image.shape[:2]
    x, y = center
    x0, x1 = max(int(np.floor(x - radius)), 0), min(int(np.ceil(x + radius)) + 1, width)
    y0, y1 = max(int(np.floor(y - radius)), 0), min(int(np.ceil(y + radius)) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.mgrid[y0:y1, x0:x1]
    inside = (xx - x) ** 2 + (yy - y) ** 2 <= radius**2
    image[y0:y1, x0:x1][inside] = color


def draw_line(image: np.ndarray, start: tuple[float, float], end: tuple[float, float], color: np.ndarray,
              thickness: float = 1.0) -> None:
    """Draw a segment in place by stamping discs along it (simple, no dependency on a drawing library)."""
    length = float(np.hypot(end[0] - start[0], end[1] - start[1]))
    steps = max(int(np.ceil(length * 2)), 1)
    for t in np.linspace(0.0, 1.0, steps + 1):
        point = (start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1]))
        draw_disc(image, point, thickness / 2 + 0.25, color)


def draw_keypoints(
    image: np.ndarray,
    points: np.ndarray,
    jacobians: np.ndarray | None = None,
    radius: float | None = None,
    trails: list[np.ndarray] | None = None,
) -> np.ndarray:
    """A copy of ``image`` with keypoint k drawn as a disc in ``keypoint_colors(K)[k]``.

    points: (K, 2) pixels. jacobians: (K, 2, 2), drawn as the two axes (columns) of the local affine map, as
    short lines from the keypoint. trails: earlier (K, 2) positions, drawn as small dots.
    """
    out = image.copy()
    height, width = out.shape[:2]
    radius = radius if radius is not None else max(2.0, min(height, width) / 64)
    colors = keypoint_colors(len(points))
    axis_length = 4 * radius
    # layer by layer (trails, then axes, then discs), so no line ever covers a keypoint's own centre pixel
    for previous in trails or []:
        for k, point in enumerate(previous):
            draw_disc(out, tuple(point), max(1.0, radius / 3), colors[k])
    if jacobians is not None:
        for k, point in enumerate(points):
            for column in range(2):
                direction = jacobians[k][:, column]
                norm = float(np.hypot(*direction)) or 1.0
                # the axis length follows the local scale, capped so a wild jacobian stays readable
                end = point + direction / norm * axis_length * min(norm, 2.0)
                draw_line(out, tuple(point), tuple(end), colors[k], thickness=max(1.0, radius / 2))
    for k, point in enumerate(points):
        draw_disc(out, tuple(point), radius, colors[k])
    return out


def masks_image(mask: np.ndarray) -> np.ndarray:
    """(K+1, H, W) soft masks -> (H, W, 3) uint8: each pixel the mask-weighted mix of the slot colours.

    Slot 0 (the background motion) is black; keypoint slots use ``keypoint_colors``.
    """
    colors = np.concatenate([np.zeros((1, 3)), keypoint_colors(mask.shape[0] - 1).astype(np.float64)])
    mixed = np.einsum("khw,kc->hwc", mask, colors)
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def gray_image(values: np.ndarray) -> np.ndarray:
    """(H, W) values in [0, 1] -> (H, W, 3) uint8 gray (the occlusion map: white = visible)."""
    gray = np.clip(np.round(values * 255), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def flow_image(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """(H, W, 2) displacement -> (H, W, 3) uint8 on the usual colour wheel: hue = direction, saturation = length.

    Zero motion is white. ``max_magnitude`` fixes the scale (default: the largest displacement in the field).
    """
    dx, dy = flow[..., 0], flow[..., 1]
    magnitude = np.hypot(dx, dy)
    scale = max_magnitude if max_magnitude is not None else float(magnitude.max())
    saturation = np.clip(magnitude / scale, 0, 1) if scale > 0 else np.zeros_like(magnitude)
    hue = (np.arctan2(-dy, -dx) / (2 * np.pi)) % 1.0
    return np.clip(np.round(hsv_to_rgb(hue, saturation, np.ones_like(hue)) * 255), 0, 255).astype(np.uint8)


def hsv_to_rgb(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB, all on [0, 1]: (...) arrays -> (..., 3)."""
    sector = np.floor(hue * 6) % 6
    fraction = hue * 6 - np.floor(hue * 6)
    p = value * (1 - saturation)
    q = value * (1 - fraction * saturation)
    t = value * (1 - (1 - fraction) * saturation)
    choices = [
        (value, t, p), (q, value, p), (p, value, t), (p, q, value), (t, p, value), (value, p, q),
    ]
    channels = [np.select([sector == i for i in range(6)], [c[n] for c in choices]) for n in range(3)]
    return np.stack(channels, axis=-1)


def resize_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize (panels of the motion network's 64x64 maps shown at frame size)."""
    rows = (np.arange(height) * image.shape[0] / height).astype(int)
    cols = (np.arange(width) * image.shape[1] / width).astype(int)
    return image[rows][:, cols]
