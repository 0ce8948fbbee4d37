"""Images and videos in and out: decoding, resizing, encoding, probing.

The names below are re-exported lazily (PEP 562): importing :mod:`animate_cli.media` or one of its light
submodules (images, resize) does not load PyAV; the first use of a video name does.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "IMAGE_SUFFIXES": "images",
    "MAX_IMAGE_PIXELS": "images",
    "is_image_path": "images",
    "read_image": "images",
    "write_image": "images",
    "fit_image": "resize",
    "resize_frame": "resize",
    "VideoFrame": "video",
    "VideoInfo": "video",
    "VideoReader": "video",
    "open_video": "video",
    "probe": "video",
    "audio_duration": "audio",
    "VideoWriter": "writer",
    "output_kind": "writer",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from animate_cli.media.audio import audio_duration
    from animate_cli.media.images import IMAGE_SUFFIXES, MAX_IMAGE_PIXELS, is_image_path, read_image, write_image
    from animate_cli.media.resize import fit_image, resize_frame
    from animate_cli.media.video import VideoFrame, VideoInfo, VideoReader, open_video, probe
    from animate_cli.media.writer import VideoWriter, output_kind


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
