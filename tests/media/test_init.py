"""The package's lazy re-exports."""

from __future__ import annotations

import subprocess
import sys

import pytest

import animate_cli.media as media
from animate_cli.media import images, video, writer


def test_names_are_re_exported() -> None:
    assert media.read_image is images.read_image
    assert media.open_video is video.open_video
    assert media.VideoWriter is writer.VideoWriter


def test_every_export_resolves() -> None:
    for name in media.__all__:
        assert getattr(media, name) is not None


def test_unknown_name() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        media.nothing  # noqa: B018


def test_images_do_not_load_pyav() -> None:
    code = (
        "import sys, animate_cli.media, animate_cli.media.images, animate_cli.media.resize; "
        "print('av' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
