"""Animate one square of a large source image and paste each result back into it (``animate run --source-box``).

The model works at S x S; a photo is usually much larger and the subject only part of it. The square around the
subject is cut out and resampled to S x S for the model; each animated frame is resampled back to the square's
size and blended into the full-resolution source with a feathered edge. Every pixel outside the square is the
source's own, so the output keeps the photo's resolution and untouched background.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from animate_cli.cropping import Box, square_region

#: Share of the square's side over which the pasted result fades into the source (hides the seam).
FEATHER = 0.08
#: Margin per side around the subject for ``--source-box auto``: room for the head or body to move in.
AUTO_MARGIN = 0.25


def feather_alpha(side: int, width: int) -> np.ndarray:
    """(side, side, 1) float32 weights of the pasted square: 1 inside, falling linearly to near 0 over the
    ``width`` pixels along each edge."""
    distance = np.minimum(np.arange(side), np.arange(side)[::-1]).astype(np.float32)  # to the nearest edge
    ramp = np.clip((distance + 1) / (width + 1), 0.0, 1.0)
    return (ramp[:, None] * ramp[None, :])[..., None]


@dataclass(frozen=True)
class Placement:
    """The square (x, y, side) of the full source ``image`` that is animated and pasted back."""

    image: np.ndarray
    x: int
    y: int
    side: int

    @functools.cached_property
    def alpha(self) -> np.ndarray:
        """The feather weights of the square (computed once, used for every frame)."""
        return feather_alpha(self.side, max(1, round(FEATHER * self.side)))

    def model_input(self, size: int) -> np.ndarray:
        """The square resampled to the model's size x size."""
        from animate_cli.media.resize import resize_frame

        return resize_frame(self.image[self.y:self.y + self.side, self.x:self.x + self.side], (size, size))

    def paste(self, result: np.ndarray) -> np.ndarray:
        """The full source with ``result`` (S x S) resampled into the square, its edge feathered."""
        from animate_cli.media.resize import resize_frame

        patch = resize_frame(result, (self.side, self.side)).astype(np.float32)
        alpha = self.alpha
        out = self.image.copy()
        window = out[self.y:self.y + self.side, self.x:self.x + self.side]
        window[...] = np.round(patch * alpha + window.astype(np.float32) * (1 - alpha)).astype(np.uint8)
        return out


def place_source(
    image: np.ndarray, box: tuple[int, int, int, int] | str, find_subject: Callable[[np.ndarray], Box] | None = None
) -> Placement:
    """Where to animate ``image``: an explicit (x, y, w, h) box made square around its centre, or 'auto':
    the square around the subject ``find_subject`` reports, with :data:`AUTO_MARGIN`."""
    height, width = image.shape[:2]
    if box == "auto":
        assert find_subject is not None, "--source-box auto needs a subject finder"
        x, y, side = square_region(find_subject(image), AUTO_MARGIN, width, height)
    else:
        left, top, box_width, box_height = box
        x, y, side = square_region((left, top, left + box_width, top + box_height), 0.0, width, height)
    return Placement(image, x, y, side)
