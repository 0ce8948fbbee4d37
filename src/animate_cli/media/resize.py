"""Fitting images to the model's square input and resampling output frames.

Pure functions on (H, W, 3) uint8 arrays. Resampling is Pillow's bilinear filter, which widens its support
when shrinking (anti-aliased, area-style averaging) instead of point-sampling, so downscaled photos do not
alias. An image that already has the requested size is returned as is, bit for bit.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

from animate_cli.errors import MediaError

FitMode = Literal["crop", "pad", "stretch"]
FIT_MODES: tuple[FitMode, ...] = ("crop", "pad", "stretch")


def fit_image(
    image: np.ndarray,
    size: int,
    mode: FitMode = "crop",
    box: tuple[int, int, int, int] | None = None,
    pad_color: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Return a (size, size, 3) uint8 version of ``image``.

    Args:
        image: (H, W, 3) uint8 RGB.
        size: side of the square result, in pixels.
        mode: ``"crop"`` keeps the centred square, ``"pad"`` letterboxes the whole image onto ``pad_color``,
            ``"stretch"`` ignores the aspect ratio.
        box: optional ``(x, y, width, height)`` region cut out first; clamped to the image.
        pad_color: RGB colour of the letterbox bars.

    Raises:
        MediaError: ``box`` is empty or lies entirely outside the image.
        ValueError: ``image``, ``size`` or ``mode`` is malformed (a programming error).
    """
    _check_image(image)
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    if mode not in FIT_MODES:
        raise ValueError(f"mode must be one of {', '.join(FIT_MODES)}, got {mode!r}")
    if box is not None:
        image = _cut_box(image, box)
    height, width = image.shape[:2]
    if mode == "crop":
        side = min(width, height)
        top, left = (height - side) // 2, (width - side) // 2
        return resize_frame(image[top : top + side, left : left + side], (size, size))
    if mode == "stretch":
        return resize_frame(image, (size, size))
    return _letterbox(image, size, pad_color)


def resize_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resample an (H, W, 3) uint8 image to ``size`` = (width, height); unchanged if already that size."""
    _check_image(image)
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, got {width}x{height}")
    if image.shape[1] == width and image.shape[0] == height:
        return image
    resized = Image.fromarray(np.ascontiguousarray(image)).resize(
        (width, height), Image.Resampling.BILINEAR
    )
    return np.asarray(resized, dtype=np.uint8).copy()


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {image.shape} {image.dtype}")


def _cut_box(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The part of ``image`` inside ``box`` = (x, y, width, height), clamped to the image."""
    x, y, box_width, box_height = box
    height, width = image.shape[:2]
    if box_width < 1 or box_height < 1:
        raise MediaError(f"box {x},{y},{box_width},{box_height} is empty (width and height must be positive)")
    left, top = max(x, 0), max(y, 0)
    right, bottom = min(x + box_width, width), min(y + box_height, height)
    if right <= left or bottom <= top:
        raise MediaError(f"box {x},{y},{box_width},{box_height} is outside the {width}x{height} image")
    return image[top:bottom, left:right]


def _letterbox(image: np.ndarray, size: int, pad_color: tuple[int, int, int]) -> np.ndarray:
    """Scale ``image`` to fit a size x size square, centred on bars of ``pad_color``.

    Scaling before padding keeps the bar colour from bleeding into the picture's edges.
    """
    height, width = image.shape[:2]
    scale = size / max(width, height)
    inner_width = max(1, min(size, round(width * scale)))
    inner_height = max(1, min(size, round(height * scale)))
    inner = resize_frame(image, (inner_width, inner_height))
    if inner_width == size and inner_height == size:
        return inner
    canvas = np.empty((size, size, 3), dtype=np.uint8)
    canvas[:, :] = np.asarray(pad_color, dtype=np.uint8)
    top, left = (size - inner_height) // 2, (size - inner_width) // 2
    canvas[top : top + inner_height, left : left + inner_width] = inner
    return canvas
