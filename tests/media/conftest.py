"""Small media files generated with PyAV (and Pillow) once per test session.

Clips are 64x48 (or odd-sized 65x47), about half a second long, so the whole media suite stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

FPS = 25
FRAMES = 12
WIDTH, HEIGHT = 64, 48
AUDIO_RATE = 44100


def pattern(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A smooth RGB test picture that moves with ``index`` (compresses well, differs from frame to frame)."""
    x = np.arange(width)[None, :]
    y = np.arange(height)[:, None]
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:, :, 0] = (x * 3 + index * 10) % 256
    image[:, :, 1] = (y * 4 + index * 5) % 256
    image[:, :, 2] = ((x + y) * 2) % 256
    return image


def sine(seconds: float, rate: int = AUDIO_RATE, frequency: float = 440.0) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def add_audio_stream(container: av.container.OutputContainer, codec: str, rate: int) -> av.audio.stream.AudioStream:
    """A mono stream taking float samples (packed for Opus, which has no planar input)."""
    stream = container.add_stream(codec, rate=rate)
    stream.codec_context.layout = "mono"
    formats = [f.name for f in stream.codec_context.codec.audio_formats]
    stream.codec_context.format = "fltp" if "fltp" in formats else "flt"
    return stream


def write_audio(
    container: av.container.OutputContainer,
    stream: av.audio.stream.AudioStream,
    seconds: float,
    start: float = 0.0,
) -> None:
    """Encode ``seconds`` of a mono sine into ``stream``, in 1024-sample frames, beginning at ``start`` s."""
    rate = stream.codec_context.sample_rate
    offset = round(start * rate)
    samples = sine(seconds, rate)
    for first in range(0, len(samples), 1024):
        # Mono: planar and packed float arrays have the same (1, samples) shape.
        frame = av.AudioFrame.from_ndarray(
            samples[None, first : first + 1024], format=stream.codec_context.format.name, layout="mono"
        )
        frame.sample_rate = rate
        frame.pts = offset + first
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def make_video(
    path: Path,
    *,
    frames: int = FRAMES,
    size: tuple[int, int] = (WIDTH, HEIGHT),
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    times: Sequence[float] | None = None,
    audio_codec: str | None = None,
    audio_rate: int = AUDIO_RATE,
    audio_seconds: float | None = None,
    audio_start: float = 0.0,
    rotation: int | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Write ``frames`` pattern frames (at ``times`` seconds, else every 1/25 s), optionally with a sine track
    of ``audio_seconds`` starting at ``audio_start`` seconds."""
    width, height = size
    times = list(times) if times is not None else [i / FPS for i in range(frames)]
    with av.open(str(path), "w", container_options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        time_base = Fraction(1, 1000) if codec != "mpeg4" else Fraction(1, FPS)
        stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        audio = add_audio_stream(container, audio_codec, audio_rate) if audio_codec is not None else None
        for index, seconds in enumerate(times):
            frame = av.VideoFrame.from_ndarray(pattern(index, width, height), format="rgb24")
            frame.pts = round(seconds / time_base)
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        if audio is not None:
            seconds = audio_seconds if audio_seconds is not None else times[-1] + 0.5
            write_audio(container, audio, seconds, audio_start)
    return path


def make_audio(path: Path, codec: str = "aac", seconds: float = 1.0) -> Path:
    with av.open(str(path), "w") as container:
        write_audio(container, add_audio_stream(container, codec, AUDIO_RATE), seconds)
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def mp4_with_audio(media_dir: Path) -> Path:
    """12 frames of H.264 at 25 fps (0.48 s) with 1 s of AAC, so the audio outlasts the video."""
    return make_video(media_dir / "clip.mp4", audio_codec="aac", audio_seconds=1.0)


@pytest.fixture(scope="session")
def mkv_clip(media_dir: Path) -> Path:
    return make_video(media_dir / "clip.mkv", audio_codec="aac", audio_seconds=1.0)


@pytest.fixture(scope="session")
def webm_clip(media_dir: Path) -> Path:
    return make_video(
        media_dir / "clip.webm", codec="libvpx-vp9", audio_codec="libopus", audio_rate=48000, audio_seconds=1.0
    )


@pytest.fixture(scope="session")
def avi_clip(media_dir: Path) -> Path:
    return make_video(media_dir / "clip.avi", codec="mpeg4", audio_codec="libmp3lame", audio_seconds=1.0)


@pytest.fixture(scope="session")
def gif_clip(media_dir: Path) -> Path:
    return make_video(media_dir / "clip.gif", codec="gif", pix_fmt="rgb8")


#: Frame times of the variable-frame-rate clip: irregular gaps from 10 ms to 300 ms.
VFR_TIMES = [0.0, 0.04, 0.05, 0.2, 0.24, 0.54, 0.58, 0.6, 0.9, 1.0]


@pytest.fixture(scope="session")
def vfr_mkv(media_dir: Path) -> Path:
    return make_video(media_dir / "vfr.mkv", times=VFR_TIMES, audio_codec="aac", audio_seconds=1.5)


@pytest.fixture(scope="session")
def odd_mp4(media_dir: Path) -> Path:
    """65x47: 4:4:4 chroma lets H.264 store odd sizes (4:2:0 cannot)."""
    return make_video(media_dir / "odd.mp4", size=(65, 47), pix_fmt="yuv444p")


@pytest.fixture(scope="session")
def rotated_mp4(media_dir: Path) -> Path:
    """A 64x48 clip whose display matrix says: turn 90 degrees counter-clockwise (a phone held upright)."""
    return make_video(media_dir / "rotated.mp4", frames=3, rotation=90)


@pytest.fixture(scope="session")
def frame_folder(media_dir: Path) -> Path:
    """``frame1.png`` ... ``frame10.png``: natural order differs from plain string order."""
    folder = media_dir / "frames"
    folder.mkdir()
    for number in range(1, 11):
        Image.fromarray(pattern(number)).save(folder / f"frame{number}.png")
    return folder


@pytest.fixture(scope="session")
def m4a_audio(media_dir: Path) -> Path:
    return make_audio(media_dir / "sound.m4a")


@pytest.fixture(scope="session")
def no_frames_mkv(media_dir: Path, mp4_with_audio: Path) -> Path:
    """A video stream whose packets are all P-frames: the decoder, lacking a keyframe, outputs nothing."""
    path = media_dir / "no_frames.mkv"
    with av.open(str(mp4_with_audio)) as source, av.open(str(path), "w") as output:
        video_in = source.streams.video[0]
        video_out = output.add_stream_from_template(video_in)
        for packet in source.demux(video_in):
            if packet.size and not packet.is_keyframe:
                packet.stream = video_out
                output.mux(packet)
    return path


def truncate(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def noisy_video(path: Path, container_options: dict[str, str] | None = None) -> Path:
    """30 frames of noise: the frames, not the header, make up most of the file."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", container_options=container_options or {}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(30):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def damaged_audio_mp4(media_dir: Path) -> Path:
    """An mp4 whose AAC packets 5 to 15 hold garbage (the video packets are intact)."""
    path = make_video(media_dir / "damaged_audio.mp4", audio_codec="aac", audio_seconds=1.0)
    with av.open(str(path)) as container:
        spans = [(p.pos, p.size) for p in container.demux(audio=0) if p.size and p.pos is not None]
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    for position, size in spans[5:15]:
        data[position : position + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n")
    return path
