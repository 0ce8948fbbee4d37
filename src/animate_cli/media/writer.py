"""Streaming video writing: frames are encoded as they arrive, the result appears only when complete.

:class:`VideoWriter` writes MP4/MOV/MKV (H.264), WebM (VP9), AVI (MPEG-4 Part 2), GIF, or lossless PNG frames
(into a folder or after a ``name%05d.png`` pattern). Each frame may carry its own time, so the output keeps a
variable-frame-rate driver's timing. Everything is written to a hidden temporary file or folder beside the
destination and renamed into place by :meth:`VideoWriter.close`; an error or an interruption leaves nothing.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
from PIL import Image

from animate_cli.errors import MediaError
from animate_cli.media.audio import AudioMode, AudioTrack
from animate_cli.media.common import ffmpeg_reason, publish, require_output_folder, write_error

#: File name of frame ``i`` in a PNG folder output.
FRAME_NAME = "{:06d}.png"
_FRAME_NAME_RE = re.compile(r"\d{6}\.png")
# One printf-style integer field, e.g. ``%d`` or ``%05d``: the only directive a frame pattern may hold.
_PATTERN_FIELD_RE = re.compile(r"%(0?\d*)d")

#: Audio is written this many seconds behind the video, so the end can still be cut exactly at close.
_AUDIO_LAG = 1.0


@dataclass(frozen=True)
class _Format:
    """How one container kind is encoded."""

    codec: str
    pix_fmt: str
    time_base: Fraction | None  # None: a frame clock, one tick per frame whatever its time (AVI)
    audio_encoder: str | None  # None: the format carries no audio
    options: dict[str, str] = field(default_factory=dict)
    container_options: dict[str, str] = field(default_factory=dict)


# MP4/MOV use MPEG's 90 kHz clock; Matroska/WebM count milliseconds. Both are fine enough for any driver.
# faststart moves the MP4 index to the front, so players and browsers can start before the download ends.
_FASTSTART = {"movflags": "+faststart"}
# VP9 in constant-quality mode needs b=0; row-mt and cpu-used 4 make it several times faster for a few % size.
_VP9_OPTIONS = {"b": "0", "row-mt": "1", "cpu-used": "4"}
_FORMATS = {
    "mp4": _Format("libx264", "yuv420p", Fraction(1, 90000), "aac", container_options=_FASTSTART),
    "mov": _Format("libx264", "yuv420p", Fraction(1, 90000), "aac", container_options=_FASTSTART),
    "mkv": _Format("libx264", "yuv420p", Fraction(1, 1000), "aac"),
    "webm": _Format("libvpx-vp9", "yuv420p", Fraction(1, 1000), "libopus", _VP9_OPTIONS),
    # AVI has no presentation times, only a frame count: a variable frame rate cannot be kept there.
    "avi": _Format("mpeg4", "yuv420p", None, "libmp3lame"),
    # GIF delays are in hundredths of a second.
    "gif": _Format("gif", "pal8", Fraction(1, 100), None),
}
_SUFFIX_KINDS = {".mp4": "mp4", ".mov": "mov", ".mkv": "mkv", ".webm": "webm", ".avi": "avi", ".gif": "gif"}
_SUPPORTED = ".mp4, .mov, .mkv, .webm, .avi, .gif, a folder/ (PNG frames) or a name%05d.png pattern"
# MPEG-4 Part 2 quantiser for AVI (2 = best, 31 = worst); FFmpeg wants it scaled by FF_QP2LAMBDA.
_MPEG4_QUANTISER = 3
_FF_QP2LAMBDA = 118


def output_kind(path: str | os.PathLike[str]) -> str:
    """What ``path`` asks to be written: ``"mp4"``, ``"mov"``, ``"mkv"``, ``"webm"``, ``"avi"``, ``"gif"``,
    ``"png-folder"`` (a path ending in a separator, or an existing folder) or ``"png-pattern"``.

    Raises:
        MediaError: the suffix is not a supported output, or a frame pattern is malformed.
    """
    text = os.fspath(path)
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        return "png-folder"
    target = Path(text)
    suffix = target.suffix.lower()
    if "%" in target.name:
        if suffix != ".png" or not _is_pattern(target.name):
            raise MediaError(
                f"{path}: a frame pattern must end in .png and hold one %d (or %05d) and no other %"
            )
        return "png-pattern"
    kind = _SUFFIX_KINDS.get(suffix)
    if kind is None:
        raise MediaError(f"{path}: unsupported output type '{target.suffix}' (use {_SUPPORTED})")
    return kind


def _is_pattern(name: str) -> bool:
    return len(_PATTERN_FIELD_RE.findall(name)) == 1 and name.count("%") == 1


def existing_frames(kind: str, target: Path) -> list[Path]:
    """Files in the destination that a PNG output (``kind`` png-folder or png-pattern) would write or replace."""
    if kind == "png-pattern":
        folder = target.parent
        before, width, after = _PATTERN_FIELD_RE.split(target.name)
        digits = rf"\d{{{int(width)},}}" if width else r"\d+"
        name_re = re.compile(re.escape(before) + digits + re.escape(after))
    else:
        folder, name_re = target, _FRAME_NAME_RE
    if not folder.is_dir():
        return []
    return [entry for entry in folder.iterdir() if name_re.fullmatch(entry.name)]


def check_output(path: str | os.PathLike[str], overwrite: bool = False) -> str:
    """Everything that can be checked before writing: a known kind, a writable folder, no output to clobber.

    Returns the output kind. Raises MediaError with the reason.
    """
    kind = output_kind(path)
    target = Path(path)
    require_output_folder(target.parent, path)
    if kind == "png-folder" and target.exists():
        require_output_folder(target, path)
    if overwrite:
        if kind not in ("png-folder", "png-pattern") and target.is_dir():
            raise MediaError(f"{path}: is a folder; cannot replace it with a video file")
    elif kind in ("png-folder", "png-pattern"):
        if existing_frames(kind, target):
            raise MediaError(f"{path}: holds frames already (use --overwrite)")
    elif target.exists():
        raise MediaError(f"{path}: exists (use --overwrite)")
    return kind


class VideoWriter:
    """Encode frames into a video file or PNG frames as they come; publish the result on :meth:`close`.

    Args:
        path: destination; its suffix (or trailing separator, or ``%d`` pattern) picks the format.
        fps: nominal frame rate; also the time of frames written without one (``index / fps``).
        audio_source: file whose first audio stream goes into the output (cut to the video's span, starting
            at the source's first video frame). Ignored for GIF and PNG outputs, and when it has no audio.
        overwrite: replace an existing output instead of refusing.
        crf: constant rate factor for H.264 and VP9: lower is better and bigger (18 is visually lossless).

    Raises:
        MediaError: unsupported output, existing output without ``overwrite``, missing or read-only folder,
            missing ``audio_source``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        audio_source: str | os.PathLike[str] | None = None,
        overwrite: bool = False,
        crf: int = 18,
    ) -> None:
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps}")
        self.path = path
        self.kind = output_kind(path)
        self.fps = fps
        self._crf = crf
        self._target = Path(path)
        self._frames_written = 0
        self._last_pts = -1
        self._last_time = 0.0
        self._size: tuple[int, int] | None = None  # (height, width) of the frames given to write()
        self._closed = False
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None
        self._audio: AudioTrack | None = None

        check_output(path, overwrite)

        if self.kind in ("png-folder", "png-pattern"):
            self._format = None
            self._temp = Path(tempfile.mkdtemp(prefix=f".{self._target.name}.tmp-", dir=self._target.parent))
            return
        self._format = _FORMATS[self.kind]
        fd, temp_name = tempfile.mkstemp(
            prefix=f".{self._target.stem}.tmp-", suffix=self._target.suffix, dir=self._target.parent
        )
        os.close(fd)
        self._temp = Path(temp_name)
        try:
            self._container = av.open(
                temp_name, mode="w", container_options=self._format.container_options
            )
            if audio_source is not None and self._format.audio_encoder is not None:
                self._audio = AudioTrack.open(audio_source, self._container, self._format.audio_encoder)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, av.error.FFmpegError):
                raise MediaError(f"{path}: cannot create the output ({ffmpeg_reason(exc)})") from exc
            raise

    @property
    def audio_mode(self) -> AudioMode | None:
        """How audio goes into the output: ``"copy"`` (packets as they are), ``"encode"``, or None (no audio)."""
        return self._audio.mode if self._audio is not None else None

    @property
    def frames_written(self) -> int:
        """How many frames :meth:`write` has accepted."""
        return self._frames_written

    def _frame_path(self, index: int) -> Path:
        """Final path of frame ``index`` in a PNG output."""
        if self.kind == "png-pattern":
            return self._target.parent / (self._target.name % index)
        return self._target / FRAME_NAME.format(index)

    def _existing_frames(self) -> list[Path]:
        return existing_frames(self.kind, self._target)

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        """Encode one (H, W, 3) uint8 RGB frame shown at ``time`` seconds (default ``index / fps``).

        A time at or before the previous frame's (or closer than the container's clock resolves) is moved
        one clock tick after it. AVI has only a frame clock and ignores ``time``. All frames must have the
        size of the first; odd sizes are padded to even ones (by repeating the edge) for H.264/VP9/MPEG-4.

        Raises:
            MediaError: encoding or writing failed (disk full...). The output is then abandoned.
            ValueError: malformed frame, changed size, or a bad time.
        """
        if self._closed:
            raise ValueError(f"{self.path}: writer is closed")
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 frame, got {image.shape} {image.dtype}")
        if self._size is None:
            self._size = image.shape[:2]
        elif image.shape[:2] != self._size:
            raise ValueError(
                f"frame {self._frames_written} is {image.shape[1]}x{image.shape[0]}, "
                f"the first was {self._size[1]}x{self._size[0]}"
            )
        frame_clock = self._format is not None and self._format.time_base is None
        seconds = self._frames_written / self.fps if time is None or frame_clock else float(time)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"frame time must be a non-negative number, got {time}")
        try:
            if self._format is None:
                Image.fromarray(image).save(self._temp / FRAME_NAME.format(self._frames_written))
            else:
                self._encode(image, seconds)
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from exc
        except av.error.FFmpegError as exc:
            self.abort()
            reason = ffmpeg_reason(exc)
            raise MediaError(f"{self.path}: cannot encode frame {self._frames_written} ({reason})") from exc
        self._last_time = seconds
        self._frames_written += 1

    def _encode(self, image: np.ndarray, seconds: float) -> None:
        assert self._format is not None and self._container is not None
        if self._stream is None:
            self._stream = self._add_video_stream(*image.shape[:2])
            if self._audio is not None:
                self._audio.add_stream()
        stream = self._stream
        time_base = stream.codec_context.time_base
        frame = self._make_frame(image)
        # Strictly increasing timestamps: muxers reject equal ones, so frames too close share no tick.
        pts = max(round(seconds / time_base), self._last_pts + 1)
        frame.pts = pts
        frame.time_base = time_base
        frame.duration = max(1, round(1 / (self.fps * time_base)))
        self._last_pts = pts
        for packet in stream.encode(frame):
            self._container.mux(packet)
        if self._audio is not None:
            self._audio.pump(seconds - _AUDIO_LAG)

    def _add_video_stream(self, height: int, width: int) -> av.video.stream.VideoStream:
        assert self._format is not None and self._container is not None
        fmt = self._format
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream(fmt.codec, rate=rate)
        if fmt.pix_fmt == "yuv420p":
            # 4:2:0 chroma covers 2x2 pixels: encoders need even sizes (frames are padded by edge replication).
            height, width = height + height % 2, width + width % 2
        stream.width, stream.height = width, height
        stream.pix_fmt = fmt.pix_fmt
        context = stream.codec_context
        context.time_base = fmt.time_base if fmt.time_base is not None else 1 / rate
        options = dict(fmt.options)
        if fmt.codec in ("libx264", "libvpx-vp9"):
            options["crf"] = str(self._crf)
        if fmt.codec == "mpeg4":
            context.qscale = True
            context.global_quality = _MPEG4_QUANTISER * _FF_QP2LAMBDA
        if fmt.pix_fmt == "yuv420p":
            # Say which RGB->YUV matrix we used (BT.601, limited range), so players convert back exactly.
            context.colorspace = av.video.reformatter.Colorspace.ITU601
            context.color_range = av.video.reformatter.ColorRange.MPEG
        context.options = options
        return stream

    def _make_frame(self, image: np.ndarray) -> av.VideoFrame:
        assert self._stream is not None
        if self._stream.pix_fmt == "pal8":
            return _palette_frame(image)
        height, width = self._stream.height, self._stream.width
        if image.shape[:2] != (height, width):
            image = np.pad(
                image, ((0, height - image.shape[0]), (0, width - image.shape[1]), (0, 0)), mode="edge"
            )
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        return frame.reformat(
            format="yuv420p",
            src_colorspace=av.video.reformatter.Colorspace.ITU601,
            dst_colorspace=av.video.reformatter.Colorspace.ITU601,
            dst_color_range=av.video.reformatter.ColorRange.MPEG,
        )

    def close(self) -> None:
        """Finish the output and move it into place. Without any frame written, nothing is published.

        Raises:
            MediaError: no frame was written, or finishing the file failed; nothing is left behind then.
        """
        if self._closed:
            return
        if self._frames_written == 0:
            self.abort()
            raise MediaError(f"{self.path}: no frames were written")
        try:
            if self._format is None:
                self._publish_frames()
            else:
                self._finish_container()
                publish(self._temp, self._target)
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from exc
        except av.error.FFmpegError as exc:
            self.abort()
            raise MediaError(f"{self.path}: cannot finish the video ({ffmpeg_reason(exc)})") from exc
        self._closed = True

    def _finish_container(self) -> None:
        assert self._container is not None and self._stream is not None
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        if self._audio is not None:
            self._audio.finish(self._last_time + 1 / self.fps)
            self._audio.close()
        self._container.close()

    def _publish_frames(self) -> None:
        """Move the finished PNG frames into place, removing stale numbered frames of an earlier run."""
        stale = {path.name for path in self._existing_frames()}
        if self.kind == "png-folder" and not self._target.exists():
            publish(self._temp, self._target)
            return
        for index in range(self._frames_written):
            final = self._frame_path(index)
            publish(self._temp / FRAME_NAME.format(index), final)
            stale.discard(final.name)
        folder = self._target if self.kind == "png-folder" else self._target.parent
        for name in stale:
            (folder / name).unlink(missing_ok=True)
        self._temp.rmdir()

    def abort(self) -> None:
        """Abandon the output: close everything and delete the temporary file or folder. Safe to repeat."""
        self._closed = True
        if self._audio is not None:
            self._audio.close()
        if self._container is not None:
            try:
                self._container.close()
            except (av.error.FFmpegError, OSError):
                pass  # finishing a file we are about to delete may fail (disk full); it does not matter
            self._container = None
        if self._temp.is_dir():
            shutil.rmtree(self._temp, ignore_errors=True)
        else:
            self._temp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _palette_frame(image: np.ndarray) -> av.VideoFrame:
    """A pal8 frame with its own 256-colour palette (GIF stores one palette per frame).

    Median-cut without dithering: dither noise changes from frame to frame and makes animations shimmer.
    """
    quantised = Image.fromarray(np.ascontiguousarray(image)).quantize(
        256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
    )
    palette = np.zeros((256, 4), dtype=np.uint8)
    colours = np.asarray(quantised.getpalette(), dtype=np.uint8).reshape(-1, 3)[:256]
    palette[:, 0] = 255  # PyAV wants ARGB entries; every colour is opaque
    palette[: len(colours), 1:] = colours
    return av.VideoFrame.from_ndarray((np.asarray(quantised), palette), format="pal8")
