"""Streaming reads of every container we accept, their timing, and every malformed input."""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from animate_cli.errors import MediaError
from animate_cli.media.video import (
    FfmpegReader,
    VideoFrame,
    VideoReader,
    natural_key,
    open_video,
    probe,
)

from .conftest import (
    FRAMES,
    HEIGHT,
    VFR_TIMES,
    WIDTH,
    make_audio,
    make_video,
    noisy_video,
    pattern,
    truncate,
)

is_root = hasattr(os, "geteuid") and os.geteuid() == 0


def read_all(path: Path | str, **kwargs: float) -> tuple[VideoReader, list[VideoFrame]]:
    with open_video(path, **kwargs) as reader:
        return reader, list(reader)


def assert_close_to_pattern(frames: list[VideoFrame], tolerance: float) -> None:
    for frame in frames:
        error = np.abs(frame.image.astype(int) - pattern(frame.index, *frame.image.shape[1::-1])).mean()
        assert error < tolerance, f"frame {frame.index}: mean error {error:.1f}"


@pytest.mark.parametrize(
    ("fixture", "audio_codec", "tolerance"),
    [
        ("mp4_with_audio", "aac", 6),
        ("mkv_clip", "aac", 6),
        ("webm_clip", "opus", 6),
        ("avi_clip", "mp3", 12),  # the fixture uses mpeg4 at its default, low bit rate
        ("gif_clip", None, 40),  # rgb8's fixed 3-3-2 palette is coarse
    ],
)
def test_reads_every_container(
    request: pytest.FixtureRequest, fixture: str, audio_codec: str | None, tolerance: float
) -> None:
    reader, frames = read_all(request.getfixturevalue(fixture))
    assert [f.index for f in frames] == list(range(FRAMES))
    assert [f.time for f in frames] == pytest.approx([i / 25 for i in range(FRAMES)], abs=1e-3)
    assert all(f.image.shape == (HEIGHT, WIDTH, 3) and f.image.dtype == np.uint8 for f in frames)
    info = reader.info
    assert (info.width, info.height) == (WIDTH, HEIGHT)
    assert info.fps == pytest.approx(25, rel=0.01)
    assert info.has_audio is (audio_codec is not None)
    assert info.audio_codec == audio_codec
    assert info.frame_count is None or abs(info.frame_count - FRAMES) <= 1
    assert_close_to_pattern(frames, tolerance)


def test_variable_frame_rate_times_are_kept(vfr_mkv: Path) -> None:
    _, frames = read_all(vfr_mkv)
    assert [f.time for f in frames] == pytest.approx(VFR_TIMES, abs=1e-3)


def test_odd_sizes_are_read_as_they_are(odd_mp4: Path) -> None:
    reader, frames = read_all(odd_mp4)
    assert (reader.info.width, reader.info.height) == (65, 47)
    assert frames[0].image.shape == (47, 65, 3)
    assert_close_to_pattern(frames, 6)


def test_display_rotation_is_applied(rotated_mp4: Path) -> None:
    reader, frames = read_all(rotated_mp4)
    assert (reader.info.width, reader.info.height) == (HEIGHT, WIDTH)
    expected = np.rot90(pattern(0), 1)  # the matrix turns the picture 90 degrees counter-clockwise
    assert frames[0].image.shape == expected.shape
    assert np.abs(frames[0].image.astype(int) - expected).mean() < 6


def test_resolution_change_midway_keeps_the_first_size(tmp_path: Path) -> None:
    # MPEG-TS files can simply be concatenated: the joined stream switches from 64x48 to 32x24.
    make_video(tmp_path / "big.ts", frames=5)
    make_video(tmp_path / "small.ts", frames=5, size=(32, 24))
    joined = tmp_path / "joined.ts"
    joined.write_bytes((tmp_path / "big.ts").read_bytes() + (tmp_path / "small.ts").read_bytes())
    _, frames = read_all(joined)
    assert len(frames) == 10
    assert all(f.image.shape == (HEIGHT, WIDTH, 3) for f in frames)
    scaled_up = np.asarray(Image.fromarray(pattern(4, 32, 24)).resize((WIDTH, HEIGHT)), dtype=int)
    assert np.abs(frames[-1].image - scaled_up).mean() < 12


def test_frame_folder_in_natural_order(frame_folder: Path) -> None:
    (frame_folder / "notes.txt").write_text("ignored")
    reader, frames = read_all(frame_folder)
    assert len(frames) == 10
    for position, frame in enumerate(frames):
        np.testing.assert_array_equal(frame.image, pattern(position + 1))  # frame1.png first, lossless
    assert [f.time for f in frames] == pytest.approx([i / 25 for i in range(10)])
    assert reader.info.frame_count == 10 and reader.info.duration == pytest.approx(0.4)
    assert not reader.info.has_audio


def test_frame_folder_rate_can_be_chosen(frame_folder: Path) -> None:
    reader, frames = read_all(frame_folder, folder_fps=10)
    assert reader.info.fps == 10 and frames[-1].time == pytest.approx(0.9)


def test_frame_folder_with_mixed_sizes(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "1.png")
    Image.new("RGB", (8, 6)).save(tmp_path / "2.png")
    message = r"2\.png: is 8x6 but the first frame is 8x8"
    with open_video(tmp_path) as reader, pytest.raises(MediaError, match=message):
        list(reader)


def test_empty_frame_folder(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no frames here")
    with pytest.raises(MediaError, match="folder has no frame images"):
        open_video(tmp_path)


def test_natural_key() -> None:
    names = ["frame10.png", "frame2.png", "Frame1.png", "frame2b.png"]
    assert sorted(names, key=natural_key) == ["Frame1.png", "frame2.png", "frame2b.png", "frame10.png"]


def test_iterating_again_starts_over(mp4_with_audio: Path) -> None:
    with open_video(mp4_with_audio) as reader:
        first = [f.index for f in reader]
        second = [f.index for f in reader]
    assert first == second == list(range(FRAMES))


def test_closed_reader_cannot_be_iterated(mp4_with_audio: Path) -> None:
    reader = open_video(mp4_with_audio)
    reader.close()
    with pytest.raises(ValueError, match="closed"):
        iter(reader)


def test_probe(mp4_with_audio: Path) -> None:
    info = probe(mp4_with_audio)
    assert (info.width, info.height, info.frame_count, info.has_audio) == (WIDTH, HEIGHT, FRAMES, True)
    assert info.duration == pytest.approx(FRAMES / 25, abs=0.01)


def test_ffmpeg_fallback_reads_the_same_frames(mp4_with_audio: Path) -> None:
    with open_video(mp4_with_audio) as reader:
        expected = list(reader)
    with FfmpegReader(mp4_with_audio) as fallback:
        frames = list(fallback)
        assert (fallback.info.width, fallback.info.height) == (WIDTH, HEIGHT)
        assert fallback.info.fps == 25 and fallback.info.audio_codec == "aac"
    assert len(frames) == len(expected)
    assert [f.time for f in frames] == pytest.approx([f.time for f in expected])
    for ours, theirs in zip(frames, expected):
        assert np.abs(ours.image.astype(int) - theirs.image).mean() < 3


def test_ffmpeg_fallback_refuses_non_videos(text_file: Path) -> None:
    with pytest.raises(MediaError, match="ffmpeg cannot read it as a video"):
        FfmpegReader(text_file)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match=r"gone\.mp4: no such file"):
        open_video(tmp_path / "gone.mp4")


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.mp4: is empty"):
        open_video(tmp_path / "empty.mp4")


def test_text_file_is_not_a_video(text_file: Path) -> None:
    with pytest.raises(MediaError, match=r"notes\.mp4: not a readable video \(corrupt, truncated or unsupported"):
        open_video(text_file)


def test_audio_only_file(m4a_audio: Path) -> None:
    with pytest.raises(MediaError, match=r"sound\.m4a: has no video stream"):
        open_video(m4a_audio)


def test_video_without_frames(no_frames_mkv: Path) -> None:
    with pytest.raises(MediaError, match=r"no_frames\.mkv: has no frames"):
        open_video(no_frames_mkv)


def test_truncated_mp4_with_index_at_the_end(tmp_path: Path) -> None:
    # FFmpeg's default MP4 layout puts the index (moov) last: half a file has no index at all.
    cut = truncate(noisy_video(tmp_path / "full.mp4"), tmp_path / "cut.mp4")
    with pytest.raises(MediaError, match=r"cut\.mp4: not a readable video"):
        open_video(cut)


def test_truncated_mp4_with_index_first_stops_early(tmp_path: Path) -> None:
    # With the index first, PyAV decodes what is there and ends quietly where the data stops.
    full = noisy_video(tmp_path / "full.mp4", {"movflags": "+faststart"})
    cut = truncate(full, tmp_path / "cut.mp4")
    try:
        _, frames = read_all(cut)
    except MediaError as error:  # also acceptable: a clear message instead of a partial read
        assert "corrupt or truncated after" in str(error)
    else:
        assert 0 < len(frames) < 30


def test_truncated_matroska_yields_what_is_there(tmp_path: Path) -> None:
    cut = truncate(noisy_video(tmp_path / "full.mkv"), tmp_path / "cut.mkv")
    _, frames = read_all(cut)
    assert 0 < len(frames) < 30
    assert all(a.time < b.time for a, b in zip(frames, frames[1:]))


def test_damaged_audio_does_not_disturb_video(damaged_audio_mp4: Path) -> None:
    _, frames = read_all(damaged_audio_mp4)
    assert len(frames) == FRAMES
    assert_close_to_pattern(frames, 6)


def test_audio_only_file_made_by_the_fixture_has_audio(tmp_path: Path) -> None:
    # Guards the fixture the audio-only test relies on: an .m4a with sound and nothing else.
    with av.open(str(make_audio(tmp_path / "a.m4a"))) as container:
        assert container.streams.audio and not container.streams.video


@pytest.mark.skipif(is_root, reason="root reads files regardless of permissions")
def test_unreadable_file(mp4_with_audio: Path, tmp_path: Path) -> None:
    path = tmp_path / "secret.mp4"
    path.write_bytes(mp4_with_audio.read_bytes())
    path.chmod(0)
    with pytest.raises(MediaError, match=r"secret\.mp4: permission denied"):
        open_video(path)
