"""Streaming video reading: one decoded frame at a time, with true timestamps.

:func:`open_video` accepts anything PyAV can decode, a folder of frame images, and, when PyAV cannot open
or decode a file, falls back to the ffmpeg executable bundled with imageio-ffmpeg. Whatever the source, a
:class:`VideoReader` yields :class:`VideoFrame` objects whose ``time`` is the frame's presentation time in
seconds from the first frame, never decreasing, so variable-frame-rate clips keep their timing.

Each reader decodes its first frame when opened: it gives the displayed frame size (after rotation) and
turns an empty or undecodable video into an error before any work starts.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Any

import av
import numpy as np

from animate_cli.errors import MediaError
from animate_cli.media.common import ffmpeg_reason, require_input_file
from animate_cli.media.images import is_image_path, read_image

#: Frame rate given to a folder of frames (and to videos that do not state one).
DEFAULT_FPS = 25.0

# Containers whose only clock is the frame count: AVI stores no presentation times, and the ones FFmpeg
# derives for it come out of the decoder shuffled when the codec uses B-frames.
_FRAME_CLOCK_FORMATS = frozenset({"avi"})


@dataclass(frozen=True)
class VideoInfo:
    """What is known about a video before decoding all of it.

    ``width`` and ``height`` are those of the frames the reader yields (after display rotation).
    ``frame_count`` and ``duration`` come from the container and are estimates (None when unknown).
    """

    width: int
    height: int
    fps: float
    frame_count: int | None
    duration: float | None
    has_audio: bool
    audio_codec: str | None


@dataclass(frozen=True)
class VideoFrame:
    """One decoded frame: its position, its presentation time in seconds from the first frame, its pixels."""

    index: int
    time: float
    image: np.ndarray


class VideoReader:
    """A video opened for reading: iterate it for :class:`VideoFrame` objects, close it when done.

    Iterating again starts over from the first frame. Use as a context manager to close it reliably.
    Subclasses provide :meth:`_frames`, a fresh iterator over all frames from the start.
    """

    def __init__(self, path: Path, info: VideoInfo, first: Iterator[VideoFrame]) -> None:
        self.path = path
        self.info = info
        # The iterator that produced the already-decoded first frame; the first pass continues it.
        self._pending: Iterator[VideoFrame] | None = first
        self._closed = False

    def _frames(self) -> Iterator[VideoFrame]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[VideoFrame]:
        if self._closed:
            raise ValueError(f"{self.path}: reader is closed")
        frames, self._pending = self._pending, None
        return frames if frames is not None else self._frames()

    def close(self) -> None:
        """Release the file and any decoder or subprocess; the reader cannot be iterated afterwards."""
        self._closed = True
        self._pending = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _peek(path: str | os.PathLike[str], frames: Iterator[VideoFrame]) -> tuple[VideoFrame, Iterator[VideoFrame]]:
    """Decode the first frame; return it and an iterator that yields it again followed by the rest."""
    first = next(frames, None)
    if first is None:
        raise MediaError(f"{path}: has no frames")
    return first, itertools.chain([first], frames)


class _Timeline:
    """Turns decoder timestamps into non-decreasing seconds from the first frame.

    A frame without a timestamp is placed one nominal frame after the previous one; a timestamp that goes
    backwards (raw streams and damaged files may deliver them out of order) is held at the previous time.
    """

    def __init__(self, fps: float) -> None:
        self._step = 1.0 / fps
        self._origin: float | None = None
        self._last: float | None = None

    def time(self, seconds: float | None) -> float:
        expected = 0.0 if self._last is None else self._last + self._step
        if seconds is None:
            current = expected
        else:
            if self._origin is None:
                # Anchor the first real timestamp where a timestamp-less start would have placed it.
                self._origin = seconds - expected
            current = seconds - self._origin
            if self._last is not None:
                current = max(current, self._last)
        self._last = current
        return current


class PyAVReader(VideoReader):
    """Reads any container and codec that PyAV (libav*) can decode, demuxing only the video stream."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._shown = str(path)
        self._container = _open_container(path)
        try:
            info = self._probe(self._container)
            self._fps = info.fps
            first, frames = _peek(path, self._decode(self._container))
        except BaseException:
            self._container.close()
            raise
        # The container's numbers describe the coded frames; the first decoded frame shows what we yield.
        height, width = first.image.shape[:2]
        info = VideoInfo(
            width, height, info.fps, info.frame_count, info.duration, info.has_audio, info.audio_codec
        )
        super().__init__(Path(path), info, frames)

    def _probe(self, container: av.container.InputContainer) -> VideoInfo:
        if not container.streams.video:
            raise MediaError(f"{self._shown}: has no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise _Undecodable(f"{self._shown}: no decoder for its video codec")
        fps = _stream_fps(stream)
        duration = _stream_duration(container, stream)
        if stream.frames > 0:
            frame_count: int | None = stream.frames
        else:
            frame_count = round(duration * fps) if duration else None
        audio = container.streams.audio
        # The canonical name ("mp3"), not the decoder's ("mp3float").
        audio_codec = audio[0].codec_context.codec.canonical_name if audio and audio[0].codec_context else None
        return VideoInfo(
            stream.codec_context.width,
            stream.codec_context.height,
            fps,
            frame_count,
            duration,
            bool(audio),
            audio_codec,
        )

    def _frames(self) -> Iterator[VideoFrame]:
        self._container.close()
        self._container = _open_container(self.path, self._shown)
        return self._decode(self._container)

    def _decode(self, container: av.container.InputContainer) -> Iterator[VideoFrame]:
        stream = container.streams.video[0]
        # Frame threads make decoding several times faster; frame order and timestamps are unaffected.
        stream.thread_type = "AUTO"
        time_base = stream.time_base or Fraction(1, 1)
        timeline = _Timeline(self._fps)
        trust_pts = container.format.name not in _FRAME_CLOCK_FORMATS
        size: tuple[int, int] | None = None
        decoded = container.decode(stream)
        for index in itertools.count():
            try:
                frame = next(decoded)
            except StopIteration:
                return
            except av.error.FFmpegError as exc:
                raise MediaError(
                    f"{self._shown}: corrupt or truncated after {index} frames ({ffmpeg_reason(exc)})"
                ) from exc
            seconds = float(frame.pts * time_base) if trust_pts and frame.pts is not None else None
            # A stream may change resolution midway; like ffmpeg, keep the first frame's size throughout.
            size = size or (frame.width, frame.height)
            yield VideoFrame(index, timeline.time(seconds), _frame_image(frame, size))

    def close(self) -> None:
        super().close()
        self._container.close()


def _stream_duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """Seconds the video stream lasts: its own duration, Matroska's per-stream DURATION tag, or the file's."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION", "")
    if match := re.fullmatch(r"(\d+):(\d\d):(\d\d(?:\.\d+)?)", tag):
        hours, minutes, seconds = match.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    """The stream's average frame rate, or the best guess FFmpeg has, or :data:`DEFAULT_FPS`."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else DEFAULT_FPS


def _frame_image(frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    """The frame scaled to ``size`` = (width, height) as upright (H, W, 3) uint8 RGB, honouring the display
    rotation phones record."""
    width, height = size
    image = frame.to_ndarray(format="rgb24", width=width, height=height)
    # ``rotation`` is the display matrix's counter-clockwise angle (PyAV >= 13); older PyAV shows frames as coded.
    quarter_turns = round(getattr(frame, "rotation", 0) / 90) % 4
    if quarter_turns:
        image = np.ascontiguousarray(np.rot90(image, quarter_turns))
    return image


class _Undecodable(MediaError):
    """PyAV cannot open or decode the file at all; another decoder may still succeed."""


def _open_container(path: str | os.PathLike[str], shown: str | None = None) -> av.container.InputContainer:
    try:
        # tags in another encoding than UTF-8 (old cameras and editors write Latin-1) must not make a video unusable
        return av.open(str(path), mode="r", metadata_errors="replace")
    except av.error.FFmpegError as exc:
        raise _Undecodable(
            f"{shown or path}: not a readable video (corrupt, truncated or unsupported: "
            f"{ffmpeg_reason(exc)})"
        ) from exc


class FfmpegReader(VideoReader):
    """Fallback reader piping raw RGB frames out of imageio-ffmpeg's bundled ffmpeg executable.

    ffmpeg applies display rotation itself and delivers frames at the constant rate it reports, so times are
    ``index / fps`` (variable frame rate is not preserved on this path).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._shown = str(path)
        self._process: Generator[Any, None, None] | None = None
        meta = self._start(path)
        width, height = meta["size"]
        fps = float(meta.get("fps") or 0) or DEFAULT_FPS
        duration = float(meta.get("duration") or 0) or None
        info = VideoInfo(
            width=width,
            height=height,
            fps=fps,
            frame_count=round(duration * fps) if duration else None,
            duration=duration,
            has_audio="audio_codec" in meta,
            audio_codec=meta.get("audio_codec"),
        )
        try:
            _, frames = _peek(path, self._read(width, height, fps))
        except BaseException:
            self._stop()
            raise
        super().__init__(Path(path), info, frames)

    def _start(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Start ffmpeg on ``path`` (stopping any earlier run) and return the metadata it reports."""
        self._stop()
        import imageio_ffmpeg  # the fallback alone needs it: PyAV reads most files without ffmpeg's binary

        process = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
        try:
            meta = next(process)
        # imageio-ffmpeg reports an unreadable input as OSError, RuntimeError, or a parsing error (IndexError,
        # AttributeError) on ffmpeg's log; all mean ffmpeg found no video it can decode.
        except Exception as exc:  # noqa: BLE001
            process.close()
            raise MediaError(f"{self._shown}: ffmpeg cannot read it as a video") from exc
        self._process = process
        return meta

    def _read(self, width: int, height: int, fps: float) -> Iterator[VideoFrame]:
        assert self._process is not None
        process = self._process
        index = 0
        while True:
            try:
                data = next(process, None)
            except RuntimeError as exc:  # imageio-ffmpeg's report of a short read or an ffmpeg failure
                raise MediaError(f"{self._shown}: corrupt or truncated after {index} frames") from exc
            if data is None:
                return
            image = np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3).copy()
            yield VideoFrame(index, index / fps, image)
            index += 1

    def _frames(self) -> Iterator[VideoFrame]:
        meta = self._start(self.path)
        width, height = meta["size"]
        return self._read(width, height, self.info.fps)

    def _stop(self) -> None:
        if self._process is not None:
            # Closing the generator runs imageio-ffmpeg's cleanup, which terminates the ffmpeg process.
            self._process.close()
            self._process = None

    def close(self) -> None:
        super().close()
        self._stop()


class FolderReader(VideoReader):
    """Reads a folder of frame images in natural name order (``frame2`` before ``frame10``) at a fixed rate."""

    def __init__(self, folder: str | os.PathLike[str], fps: float = DEFAULT_FPS) -> None:
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self._shown = str(folder)
        try:
            names = [entry.name for entry in os.scandir(folder) if entry.is_file()]
        except OSError as exc:
            raise MediaError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from None
        self._files = [
            Path(folder) / name
            for name in sorted(names, key=natural_key)
            if is_image_path(name) and not name.startswith(".")
        ]
        if not self._files:
            raise MediaError(f"{folder}: folder has no frame images")
        self._fps = fps
        first, frames = _peek(folder, self._read())
        height, width = first.image.shape[:2]
        count = len(self._files)
        info = VideoInfo(width, height, fps, count, count / fps, False, None)
        super().__init__(Path(folder), info, frames)

    def _read(self) -> Iterator[VideoFrame]:
        expected: tuple[int, ...] | None = None
        for index, file in enumerate(self._files):
            image = read_image(file)
            if expected is None:
                expected = image.shape
            elif image.shape != expected:
                raise MediaError(
                    f"{file}: is {image.shape[1]}x{image.shape[0]} but the first frame is "
                    f"{expected[1]}x{expected[0]}"
                )
            yield VideoFrame(index, index / self._fps, image)

    def _frames(self) -> Iterator[VideoFrame]:
        return self._read()


def natural_key(name: str) -> list[str | int]:
    """Sort key ordering digit runs by value: ``frame2.png`` < ``frame10.png``; case-insensitive otherwise."""
    # re.split with a capture group alternates text and digits, always starting with text, so positions in
    # two keys hold the same type and compare cleanly.
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def open_video(path: str | os.PathLike[str], folder_fps: float = DEFAULT_FPS) -> VideoReader:
    """Open a video file or a folder of frame images for streaming.

    Files are read with PyAV; if PyAV cannot open the file or has no decoder for its codec, the bundled
    ffmpeg executable is tried before giving up. ``folder_fps`` is the rate given to a folder of frames.

    Raises:
        MediaError: missing, empty or unreadable file; not a video; no video stream; no frames.
    """
    if Path(path).is_dir():
        return FolderReader(path, folder_fps)
    require_input_file(path)
    try:
        return PyAVReader(path)
    except _Undecodable as exc:
        try:
            return FfmpegReader(path)
        except MediaError:
            # PyAV's reason is the informative one; the fallback only confirms it.
            raise MediaError(str(exc)) from exc


def probe(path: str | os.PathLike[str], folder_fps: float = DEFAULT_FPS) -> VideoInfo:
    """Describe a video without decoding more than its first frame."""
    with open_video(path, folder_fps) as reader:
        return reader.info
