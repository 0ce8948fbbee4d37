"""Shared input checks and error messages."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import av
import pytest

from animate_cli.errors import EXIT_BAD_INPUT, MediaError
from animate_cli.media.common import ffmpeg_reason, require_input_file, require_output_folder, write_error


def test_media_errors_are_bad_input() -> None:
    assert MediaError("x").exit_code == EXIT_BAD_INPUT


def test_require_input_file(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"x")
    assert require_input_file(tmp_path / "a.bin") == tmp_path / "a.bin"
    with pytest.raises(MediaError, match="no such file"):
        require_input_file(tmp_path / "b.bin")
    with pytest.raises(MediaError, match="is a folder"):
        require_input_file(tmp_path)
    (tmp_path / "c.bin").write_bytes(b"")
    with pytest.raises(MediaError, match=r"c\.bin: is empty"):
        require_input_file(tmp_path / "c.bin")


def test_require_input_file_refuses_devices() -> None:
    if not Path("/dev/null").exists():
        pytest.skip("no /dev/null")
    with pytest.raises(MediaError, match="not a regular file"):
        require_input_file("/dev/null")


def test_require_output_folder(tmp_path: Path) -> None:
    require_output_folder(tmp_path, "out.mp4")
    with pytest.raises(MediaError, match=r"out\.mp4: output folder .* does not exist"):
        require_output_folder(tmp_path / "missing", "out.mp4")
    (tmp_path / "file").write_text("x")
    with pytest.raises(MediaError, match="is not a folder"):
        require_output_folder(tmp_path / "file", "out.mp4")


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (errno.ENOSPC, "out.mp4: no space left on device while writing"),
        (errno.EACCES, "out.mp4: permission denied while writing"),
        (errno.EIO, "out.mp4: cannot write (Input/output error)"),
    ],
)
def test_write_error(code: int, message: str) -> None:
    assert str(write_error("out.mp4", OSError(code, os.strerror(code)))) == message


def test_ffmpeg_reason_drops_the_errno_and_file_name(tmp_path: Path) -> None:
    (tmp_path / "x.mp4").write_text("not a video")
    with pytest.raises(av.error.FFmpegError) as caught:
        av.open(str(tmp_path / "x.mp4"))
    assert ffmpeg_reason(caught.value) == "Invalid data found when processing input"
