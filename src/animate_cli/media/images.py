"""Reading and writing still images as (H, W, 3) uint8 RGB arrays.

Everything a photo can carry that changes how it should look (EXIF orientation, transparency, 16-bit or
CMYK samples, palettes) is resolved here, so the rest of the program only ever sees plain 8-bit RGB.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from animate_cli.errors import MediaError
from animate_cli.media.common import publish, require_input_file, require_output_folder, write_error

#: Suffixes read (and written) as still images; also what a folder of frames may contain.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})

#: Larger images are refused from their header, before any pixel is decoded (a 8192x8192 RGB image is
#: already 200 MB once decoded; anything bigger is a mistake or a decompression bomb).
MAX_IMAGE_PIXELS = 8192 * 8192

#: Smallest accepted width and height: a 1-pixel side cannot be resized or cropped meaningfully.
MIN_IMAGE_SIDE = 2

# Pillow's modes holding one 16-bit (or wider) grey channel; Pillow's own convert("RGB") clips these at 255
# instead of scaling them, so they get their own path.
_WIDE_GREY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_JPEG_QUALITY = 95


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a still image by its suffix (case-insensitive); the file need not exist."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def read_image(
    path: str | os.PathLike[str], background: tuple[int, int, int] = (255, 255, 255)
) -> np.ndarray:
    """Read an image file as an (H, W, 3) uint8 RGB array, upright and opaque.

    EXIF orientation is applied; transparency is composited over ``background``; grey, palette, CMYK and
    16-bit images are converted to 8-bit RGB (16-bit samples are scaled, not clipped).

    Raises:
        MediaError: the file is missing, unreadable, empty, not an image, corrupt or truncated, larger than
            :data:`MAX_IMAGE_PIXELS`, or smaller than 2x2.
    """
    file = require_input_file(path)
    with warnings.catch_warnings():
        # Our own limit is lower than Pillow's warning threshold; its warning would only add noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(file)
        except Image.DecompressionBombError:
            raise MediaError(
                f"{path}: image is larger than the {MAX_IMAGE_PIXELS:,}-pixel limit"
            ) from None
        except UnidentifiedImageError:
            raise MediaError(f"{path}: not an image (or a format that cannot be read)") from None
        except OSError as exc:
            raise MediaError(f"{path}: cannot read ({exc.strerror or exc})") from None

    with image:
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise MediaError(
                f"{path}: {width}x{height} is larger than the {MAX_IMAGE_PIXELS:,}-pixel limit"
            )
        if width < MIN_IMAGE_SIDE or height < MIN_IMAGE_SIDE:
            raise MediaError(
                f"{path}: image is too small ({width}x{height}; at least "
                f"{MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} is needed)"
            )
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
            return _to_rgb(upright, background)
        # Pillow's decoders report malformed data with many exception types (OSError, SyntaxError,
        # ValueError, EOFError, struct.error, zlib.error...); for a user's file they all mean the same.
        except Exception as exc:  # noqa: BLE001
            raise MediaError(f"{path}: corrupt or truncated image ({exc})") from exc


def _to_rgb(image: Image.Image, background: tuple[int, int, int]) -> np.ndarray:
    """Convert a decoded Pillow image of any mode to a fresh (H, W, 3) uint8 RGB array."""
    if image.mode in _WIDE_GREY_MODES:
        grey = _scale_16_bit(np.asarray(image))
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint16)
        return _composite(rgba, background)
    return np.array(image.convert("RGB"), dtype=np.uint8)


def _scale_16_bit(samples: np.ndarray) -> np.ndarray:
    """Map 16-bit samples 0..65535 onto 0..255 with rounding (65535 / 255 = 257 exactly)."""
    wide = np.clip(samples.astype(np.int64), 0, 65535)
    return ((wide + 128) // 257).astype(np.uint8)


def _composite(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    """Blend an (H, W, 4) RGBA array (any integer dtype holding 0..255) over an opaque background colour."""
    alpha = rgba[:, :, 3:4].astype(np.uint32)
    colour = rgba[:, :, :3].astype(np.uint32)
    back = np.asarray(background, dtype=np.uint32).reshape(1, 1, 3)
    # Integer blend with rounding: exact at alpha 0 and 255.
    blended = (colour * alpha + back * (255 - alpha) + 127) // 255
    return blended.astype(np.uint8)


def write_image(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB array as an image, in the format named by the suffix.

    The file appears complete or not at all: it is written next to its destination and renamed into place.

    Raises:
        MediaError: unsupported suffix, missing or read-only folder, or a write failure (disk full...).
        ValueError: ``array`` is not an (H, W, 3) uint8 array.
    """
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {array.shape} {array.dtype}")
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        supported = ", ".join(sorted(IMAGE_SUFFIXES))
        raise MediaError(f"{path}: unsupported image type '{target.suffix}' (use one of {supported})")
    folder = target.parent
    require_output_folder(folder, path)
    options = {"quality": _JPEG_QUALITY} if suffix in {".jpg", ".jpeg", ".webp"} else {}
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.stem}.tmp-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        Image.fromarray(array).save(temp_name, **options)
        publish(temp_name, target)
    except OSError as exc:
        raise write_error(path, exc) from exc
    finally:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
