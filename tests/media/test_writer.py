"""Streaming writes: every output kind, timing, audio, and the promise that failures leave nothing behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from animate_cli.errors import MediaError
from animate_cli.media.audio import audio_duration
from animate_cli.media.video import VideoFrame, open_video
from animate_cli.media.writer import VideoWriter, output_kind

from .conftest import FRAMES, VFR_TIMES, make_video, pattern

is_root = hasattr(os, "geteuid") and os.geteuid() == 0


def write_clip(
    path: Path | str, frames: int = FRAMES, size: tuple[int, int] = (64, 48), **kwargs: object
) -> VideoWriter:
    with VideoWriter(path, 25, **kwargs) as writer:  # type: ignore[arg-type]
        for index in range(frames):
            writer.write(pattern(index, *size))
    return writer


def read_frames(path: Path | str) -> list[VideoFrame]:
    with open_video(path) as reader:
        return list(reader)


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files or folders a writer may have left."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.mp4", "mp4"),
        ("a.MOV", "mov"),
        ("a.mkv", "mkv"),
        ("a.webm", "webm"),
        ("a.avi", "avi"),
        ("a.gif", "gif"),
        ("frames/", "png-folder"),
        ("f_%05d.png", "png-pattern"),
        ("f%d.png", "png-pattern"),
    ],
)
def test_output_kind(name: str, kind: str) -> None:
    assert output_kind(name) == kind


def test_existing_folder_is_a_png_folder(tmp_path: Path) -> None:
    assert output_kind(tmp_path) == "png-folder"


def test_unknown_output_kind_lists_the_supported_ones() -> None:
    with pytest.raises(MediaError, match=r"a\.flv: unsupported output type '\.flv' \(use \.mp4, \.mov, \.mkv"):
        output_kind("a.flv")


@pytest.mark.parametrize("name", ["f_%05d.jpg", "f_%d_%d.png", "f_%s.png", "100%.png"])
def test_malformed_frame_patterns(name: str) -> None:
    with pytest.raises(MediaError, match="frame pattern"):
        output_kind(name)


@pytest.mark.parametrize(("suffix", "tolerance"), [(".mp4", 6), (".mov", 6), (".mkv", 6), (".webm", 6), (".avi", 8)])
def test_video_round_trip(tmp_path: Path, suffix: str, tolerance: float) -> None:
    path = tmp_path / f"out{suffix}"
    write_clip(path)
    frames = read_frames(path)
    assert len(frames) == FRAMES
    assert [f.time for f in frames] == pytest.approx([i / 25 for i in range(FRAMES)], abs=1e-3)
    for frame in frames:
        assert np.abs(frame.image.astype(int) - pattern(frame.index)).mean() < tolerance
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".avi"])
def test_odd_sizes_are_padded_to_even_by_edge_replication(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"odd{suffix}"
    write_clip(path, size=(65, 47))
    frame = read_frames(path)[3]
    assert frame.image.shape == (48, 66, 3)
    assert np.abs(frame.image[:47, :65].astype(int) - pattern(3, 65, 47)).mean() < 8
    # The added column and row repeat the last ones, so no black border appears.
    assert np.abs(frame.image[:, 65].astype(int) - frame.image[:, 64]).mean() < 8
    assert np.abs(frame.image[47].astype(int) - frame.image[46]).mean() < 8


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".webm", ".gif"])
def test_variable_frame_rate_survives_write_and_read(vfr_mkv: Path, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"vfr{suffix}"
    with open_video(vfr_mkv) as reader, VideoWriter(path, reader.info.fps) as writer:
        for frame in reader:
            writer.write(frame.image, frame.time)
    tolerance = 0.006 if suffix == ".gif" else 0.0011  # GIF counts hundredths of a second
    assert [f.time for f in read_frames(path)] == pytest.approx(VFR_TIMES, abs=tolerance)


def test_frames_too_close_for_the_clock_are_nudged_apart(tmp_path: Path) -> None:
    path = tmp_path / "close.mkv"  # Matroska counts milliseconds
    with VideoWriter(path, 25) as writer:
        for seconds in (0.0, 0.0001, 0.0002, 0.1):
            writer.write(pattern(0), seconds)
    times = [f.time for f in read_frames(path)]
    assert times == pytest.approx([0.0, 0.001, 0.002, 0.1], abs=1e-6)


def test_gif_output_is_readable(tmp_path: Path) -> None:
    path = tmp_path / "out.gif"
    write_clip(path, size=(65, 47))
    frames = read_frames(path)
    assert len(frames) == FRAMES and frames[0].image.shape == (47, 65, 3)
    assert [f.time for f in frames] == pytest.approx([i / 25 for i in range(FRAMES)], abs=0.006)
    for frame in frames:  # a 256-colour palette per frame keeps smooth pictures close
        assert np.abs(frame.image.astype(int) - pattern(frame.index, 65, 47)).mean() < 4
    with Image.open(path) as image:
        assert image.format == "GIF" and image.n_frames == FRAMES


def test_png_folder_is_lossless(tmp_path: Path) -> None:
    images = [np.random.default_rng(i).integers(0, 256, (47, 65, 3), dtype=np.uint8) for i in range(5)]
    with VideoWriter(f"{tmp_path / 'frames'}{os.sep}", 25) as writer:
        for image in images:
            writer.write(image)
    assert sorted(os.listdir(tmp_path / "frames")) == [f"{i:06d}.png" for i in range(5)]
    for image, frame in zip(images, read_frames(tmp_path / "frames")):
        np.testing.assert_array_equal(frame.image, image)
    assert leftovers(tmp_path) == []


def test_png_pattern_is_lossless(tmp_path: Path) -> None:
    images = [np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8) for i in range(3)]
    with VideoWriter(tmp_path / "shot_%03d.png", 25) as writer:
        for image in images:
            writer.write(image)
    assert sorted(os.listdir(tmp_path)) == ["shot_000.png", "shot_001.png", "shot_002.png"]
    for index, image in enumerate(images):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / f"shot_{index:03d}.png")), image)


def test_existing_output_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    path.write_bytes(b"precious")
    with pytest.raises(MediaError, match=r"out\.mp4: exists \(use --overwrite\)"):
        VideoWriter(path, 25)
    assert path.read_bytes() == b"precious"
    assert leftovers(tmp_path) == []


def test_overwrite_replaces_the_output(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    path.write_bytes(b"old")
    write_clip(path, overwrite=True)
    assert len(read_frames(path)) == FRAMES


def test_png_folder_with_frames_is_refused_then_overwritten(tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(20):  # a longer earlier run
        Image.new("RGB", (4, 4)).save(folder / f"{index:06d}.png")
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(MediaError, match="holds frames already"):
        VideoWriter(folder, 25)
    write_clip(folder, frames=3, overwrite=True)
    assert sorted(os.listdir(folder)) == ["000000.png", "000001.png", "000002.png", "notes.txt"]
    assert leftovers(tmp_path) == []


def test_png_pattern_overwrite_removes_stale_frames_only(tmp_path: Path) -> None:
    for index in range(5):
        Image.new("RGB", (4, 4)).save(tmp_path / f"f_{index:03d}.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "other.png")
    with pytest.raises(MediaError, match="holds frames already"):
        VideoWriter(tmp_path / "f_%03d.png", 25)
    write_clip(tmp_path / "f_%03d.png", frames=2, size=(8, 8), overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["f_000.png", "f_001.png", "other.png"]


def test_empty_existing_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    write_clip(tmp_path / "out", frames=2)
    assert sorted(os.listdir(tmp_path / "out")) == ["000000.png", "000001.png"]


@pytest.mark.parametrize("name", ["out.mp4", "out.gif", "frames/", "f_%04d.png"])
def test_exception_inside_with_leaves_nothing(tmp_path: Path, name: str) -> None:
    # A string keeps the trailing separator that marks a folder (pathlib drops it).
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(f"{tmp_path}{os.sep}{name}", 25) as writer:
        for index in range(3):
            writer.write(pattern(index))
        raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []


def test_abort_leaves_nothing(tmp_path: Path, mp4_with_audio: Path) -> None:
    writer = VideoWriter(tmp_path / "out.mp4", 25, audio_source=mp4_with_audio)
    writer.write(pattern(0))
    writer.abort()
    writer.abort()
    assert os.listdir(tmp_path) == []


def test_no_frames_written(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no frames were written"), VideoWriter(tmp_path / "out.mp4", 25):
        pass
    assert os.listdir(tmp_path) == []


def test_missing_output_folder_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"output folder .*missing does not exist"):
        VideoWriter(tmp_path / "missing" / "out.mp4", 25)


@pytest.mark.skipif(is_root, reason="root writes anywhere")
def test_read_only_output_folder_is_refused_up_front(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(MediaError, match="permission denied"):
            VideoWriter(folder / "out.mp4", 25)
    finally:
        folder.chmod(0o700)


def test_frame_size_must_not_change(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="frame 1 is 32x32, the first was 64x48"), VideoWriter(
        tmp_path / "out.mp4", 25
    ) as writer:
        writer.write(pattern(0))
        writer.write(pattern(1, 32, 32))
    assert os.listdir(tmp_path) == []


def test_malformed_frames_and_times(tmp_path: Path) -> None:
    with VideoWriter(tmp_path / "out.mkv", 25) as writer:
        with pytest.raises(ValueError, match="uint8"):
            writer.write(np.zeros((4, 4, 3), dtype=np.float32))
        with pytest.raises(ValueError, match="non-negative"):
            writer.write(pattern(0), float("nan"))
        writer.write(pattern(0))
    assert writer.frames_written == 1


def test_bad_fps() -> None:
    with pytest.raises(ValueError, match="fps"):
        VideoWriter("out.mp4", 0)


# --- audio -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "mode"),
    [(".mp4", "copy"), (".mov", "copy"), (".mkv", "copy"), (".webm", "encode"), (".avi", "copy")],
)
def test_audio_is_carried_and_cut_to_the_video(
    mp4_with_audio: Path, tmp_path: Path, suffix: str, mode: str
) -> None:
    path = tmp_path / f"out{suffix}"
    writer = write_clip(path, audio_source=mp4_with_audio)
    assert writer.audio_mode == mode
    video_seconds = FRAMES / 25
    # The source has 1 s of sound; the output keeps the video's 0.48 s, to within one frame (AAC and Opus
    # add up to one packet of priming or padding).
    assert audio_duration(path) == pytest.approx(video_seconds, abs=1 / 25)
    assert len(read_frames(path)) == FRAMES


@pytest.mark.parametrize(
    ("source", "suffix", "mode"),
    [
        ("webm_clip", ".mp4", "copy"),  # Opus goes into MP4 as is
        ("webm_clip", ".mkv", "copy"),
        ("avi_clip", ".webm", "encode"),  # MP3 does not go into WebM: re-encoded as Opus
        ("avi_clip", ".mp4", "copy"),
    ],
)
def test_audio_between_containers(
    request: pytest.FixtureRequest, tmp_path: Path, source: str, suffix: str, mode: str
) -> None:
    path = tmp_path / f"out{suffix}"
    writer = write_clip(path, audio_source=request.getfixturevalue(source))
    assert writer.audio_mode == mode
    assert audio_duration(path) == pytest.approx(FRAMES / 25, abs=1 / 25)


@pytest.mark.parametrize("suffix", [".gif", "/"])
def test_gif_and_png_outputs_drop_audio(mp4_with_audio: Path, tmp_path: Path, suffix: str) -> None:
    writer = write_clip(str(tmp_path / "out") + suffix, audio_source=mp4_with_audio)
    assert writer.audio_mode is None


def test_source_without_audio_gives_silent_output(gif_clip: Path, tmp_path: Path) -> None:
    writer = write_clip(tmp_path / "out.mp4", audio_source=gif_clip)
    assert writer.audio_mode is None
    assert audio_duration(tmp_path / "out.mp4") is None


def test_missing_audio_source_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"gone\.mp4: no such file"):
        VideoWriter(tmp_path / "out.mp4", 25, audio_source=tmp_path / "gone.mp4")
    assert os.listdir(tmp_path) == []


def test_audio_only_source_starts_at_its_beginning(m4a_audio: Path, tmp_path: Path) -> None:
    write_clip(tmp_path / "out.mp4", audio_source=m4a_audio)
    assert audio_duration(tmp_path / "out.mp4") == pytest.approx(FRAMES / 25, abs=1 / 25)


def first_loudness(path: Path, seconds: float = 0.05) -> float:
    """RMS of the first ``seconds`` of decoded sound after the first 25 ms (past any codec priming)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
        rate = stream.codec_context.sample_rate
    window = samples[round(0.025 * rate) : round((0.025 + seconds) * rate)]
    return float(np.sqrt(np.mean(window.astype(np.float64) ** 2)))


@pytest.fixture(scope="module")
def late_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Video starting 0.3 s into the file over sound that is silent for exactly those 0.3 s."""
    path = tmp_path_factory.mktemp("late") / "late.mkv"
    make_video(path, times=[0.3 + i / 25 for i in range(FRAMES)], audio_codec="aac", audio_seconds=1.2)
    # Re-encode the sound with a silent start, keeping the video packets.
    rate = 44100
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(round(1.2 * rate)) / rate)).astype(np.float32)
    tone[: round(0.3 * rate)] = 0
    final = path.with_name("late_silent_start.mkv")
    with av.open(str(path)) as source, av.open(str(final), "w") as output:
        video = output.add_stream_from_template(source.streams.video[0])
        audio = output.add_stream("aac", rate=rate)
        audio.codec_context.layout = "mono"
        for packet in source.demux(source.streams.video[0]):
            if packet.size:
                packet.stream = video
                output.mux(packet)
        for start in range(0, len(tone), 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in audio.encode(frame):
                output.mux(packet)
        for packet in audio.encode(None):
            output.mux(packet)
    return final


@pytest.mark.parametrize("suffix", [".mkv", ".webm"])
def test_audio_is_synced_to_the_first_video_frame(late_video: Path, tmp_path: Path, suffix: str) -> None:
    with av.open(str(late_video)) as container:
        video = container.streams.video[0]
        assert float(video.start_time * video.time_base) == pytest.approx(0.3, abs=0.01)
    path = tmp_path / f"out{suffix}"
    write_clip(path, audio_source=late_video)
    # Had the audio started at the file's start, the output would open with 0.3 s of silence.
    assert first_loudness(path) > 0.1


def audio_packet_span(path: Path) -> float:
    """Seconds from the first audio packet's start to the last one's end, damaged packets included."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        spans = [(p.pts, p.pts + p.duration) for p in container.demux(stream) if p.size and p.pts is not None]
    return float((max(end for _, end in spans) - min(start for start, _ in spans)) * stream.time_base)


def test_damaged_audio_packets_do_not_end_the_run(damaged_audio_mp4: Path, tmp_path: Path) -> None:
    # Re-encoding skips the damaged packets and fills their span with silence: length and sync are kept.
    writer = write_clip(tmp_path / "out.webm", audio_source=damaged_audio_mp4)
    assert writer.audio_mode == "encode"
    assert len(read_frames(tmp_path / "out.webm")) == FRAMES
    assert audio_duration(tmp_path / "out.webm") == pytest.approx(FRAMES / 25, abs=1 / 25)
    # Copying carries the damaged packets over untouched (players conceal them).
    writer = write_clip(tmp_path / "out.mkv", audio_source=damaged_audio_mp4)
    assert writer.audio_mode == "copy"
    assert len(read_frames(tmp_path / "out.mkv")) == FRAMES
    assert audio_packet_span(tmp_path / "out.mkv") == pytest.approx(FRAMES / 25, abs=1 / 25)


def test_long_video_interleaves_audio_as_it_goes(mp4_with_audio: Path, tmp_path: Path) -> None:
    # 3 s of video over 1 s of sound: audio is written while frames still arrive, then simply ends.
    path = tmp_path / "long.mkv"
    write_clip(path, frames=75, size=(16, 16), audio_source=mp4_with_audio)
    assert audio_duration(path) == pytest.approx(1.0, abs=0.05)
    assert len(read_frames(path)) == 75


# --- disk full ---------------------------------------------------------------------------------------------

DISK_FULL_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from animate_cli.errors import MediaError
    from animate_cli.media.writer import VideoWriter

    folder = sys.argv[1]
    os.system(f"mount -t tmpfs -o size=96k tmpfs {folder}")
    noise = np.random.default_rng(0)
    try:
        with VideoWriter(os.path.join(folder, sys.argv[2]), 25) as writer:
            for _ in range(500):
                writer.write(noise.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    except MediaError as error:
        print("ERROR", error)
    print("LEFT", sorted(os.listdir(folder)))
    """
)


@pytest.mark.parametrize("name", ["out.mp4", "frames/"])
def test_disk_full_is_reported_and_cleaned_up(tmp_path: Path, name: str) -> None:
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare to mount a tiny tmpfs")
    probe = subprocess.run([unshare, "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("unprivileged mount namespaces are not available")
    command = [sys.executable, "-c", DISK_FULL_SCRIPT, str(tmp_path), name]
    result = subprocess.run(
        [unshare, "--user", "--map-root-user", "--mount", *command],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "no space left on device" in result.stdout, result.stdout + result.stderr
    assert "LEFT []" in result.stdout


@pytest.mark.parametrize("name", ["out.mp4", "frames/", "still.png"])
def test_outputs_get_the_permissions_the_umask_gives(tmp_path, name):
    from animate_cli.media.images import write_image

    previous = os.umask(0o022)
    try:
        target = tmp_path / name
        if name == "still.png":
            write_image(target, pattern(0))
        else:
            with VideoWriter(str(target) + ("/" if name.endswith("/") else ""), fps=25) as writer:
                writer.write(pattern(0))
    finally:
        os.umask(previous)
    expected = 0o755 if target.is_dir() else 0o644
    assert target.stat().st_mode & 0o777 == expected
    if target.is_dir():
        assert all(p.stat().st_mode & 0o777 == 0o644 for p in target.iterdir())
