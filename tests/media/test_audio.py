"""Audio measurement and the audio track's edge cases (the common paths are covered through the writer)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from animate_cli.errors import MediaError
from animate_cli.media.audio import AudioTrack, audio_duration
from animate_cli.media.writer import VideoWriter

from .conftest import FRAMES, make_video, pattern


def test_audio_duration(m4a_audio: Path) -> None:
    # 1 s of sound, plus at most one 1024-sample AAC frame of padding.
    assert audio_duration(m4a_audio) == pytest.approx(1.0, abs=0.03)


def test_audio_duration_without_audio(gif_clip: Path) -> None:
    assert audio_duration(gif_clip) is None


def test_audio_duration_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no such file"):
        audio_duration(tmp_path / "gone.m4a")


@pytest.mark.parametrize("fixture", ["gif_clip", "text_file", "frame_folder"])
def test_sources_without_usable_audio(request: pytest.FixtureRequest, tmp_path: Path, fixture: str) -> None:
    with av.open(str(tmp_path / "out.mkv"), "w") as output:
        assert AudioTrack.open(request.getfixturevalue(fixture), output, "aac") is None


@pytest.mark.parametrize(("suffix", "mode"), [(".mkv", "copy"), (".webm", "encode")])
def test_codec_decides_between_copy_and_encode(mp4_with_audio: Path, tmp_path: Path, suffix: str, mode: str) -> None:
    with av.open(str(tmp_path / f"out{suffix}"), "w") as output:
        track = AudioTrack.open(mp4_with_audio, output, "libopus")
        assert track is not None and track.mode == mode
        track.close()


def test_late_audio_is_preceded_by_silence(tmp_path: Path) -> None:
    source = make_video(tmp_path / "late_audio.mkv", audio_codec="aac", audio_seconds=1.0, audio_start=0.3)
    with VideoWriter(tmp_path / "out.webm", 25, audio_source=source) as writer:
        for index in range(FRAMES):
            writer.write(pattern(index))
    assert writer.audio_mode == "encode"
    assert audio_duration(tmp_path / "out.webm") == pytest.approx(FRAMES / 25, abs=1 / 25)
    with av.open(str(tmp_path / "out.webm")) as container:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    rate = 48000
    assert np.abs(samples[: round(0.25 * rate)]).max() < 0.01  # silence where the source had no sound
    assert np.abs(samples[round(0.35 * rate) : round(0.45 * rate)]).max() > 0.2  # then the tone, on time
