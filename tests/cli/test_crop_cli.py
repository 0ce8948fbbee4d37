"""`animate crop` end to end with the tiny model's keypoints as the subject detector."""

import json

import pytest
from click.testing import CliRunner

from animate_cli.cli import cli
from animate_cli.landmarks import face_alignment_available
from animate_cli.media.video import probe
from tests.media.conftest import make_video
from tests.test_inspection import single_thread  # noqa: F401 - autouse fixture


def invoke(*args):
    return CliRunner().invoke(cli, ["crop", *[str(a) for a in args]])


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def clip(tmp_path):
    return make_video(tmp_path / "talk.mp4", frames=12, size=(64, 48), audio_codec="aac", audio_seconds=1.0)


def test_crop_writes_square_clips_of_the_asked_size(tmp_path, clip, tiny_checkpoint):
    out = tmp_path / "cropped.mp4"
    result = invoke(clip, "-o", out, "-c", tiny_checkpoint, "--detector", "keypoints", "--size", "32",
                    "--min-frames", "1", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    regions = summary["regions"]
    assert sum(r["end"] - r["start"] for r in regions) == 12  # one box per frame: the segments tile the clip
    assert len(summary["outputs"]) == len(regions) >= 1
    if len(regions) == 1:
        assert summary["outputs"] == [str(out)]
    for output, region in zip(summary["outputs"], regions):
        info = probe(output)
        assert (info.width, info.height) == (32, 32) and info.frame_count == region["end"] - region["start"]
        assert info.has_audio
        x, y, w, h = region["box"]
        assert w == h and 0 <= x and x + w <= 64 and 0 <= y and y + h <= 48


def test_print_boxes_without_output_writes_nothing(tmp_path, clip, tiny_checkpoint):
    result = invoke(clip, "--print-boxes", "-c", tiny_checkpoint, "--detector", "keypoints", "--min-frames", "1")
    assert result.exit_code == 0, result.output
    regions = json.loads(result.stdout)
    assert regions and set(regions[0]) == {"start", "end", "start_time", "end_time", "box"}
    assert regions[0]["start"] == 0 and regions[0]["start_time"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.mp4", "tiny.safetensors"]


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "give -o OUT"),
        (["-o", "out.txt"], "unsupported output type"),
        (["-o", "out.mp4", "--min-frames", "100"], "no subject found for at least 100 frames"),
    ],
)
def test_bad_inputs_give_one_line_and_exit_2(tmp_path, clip, tiny_checkpoint, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    result = invoke(clip, "-c", tiny_checkpoint, "--detector", "keypoints", *extra)
    assert result.exit_code == 2, result.output
    assert message in one_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.mp4", "tiny.safetensors"]


def test_faces_need_the_extra(tmp_path, clip):
    if face_alignment_available():
        pytest.skip("face-alignment is installed here")
    result = invoke(clip, "-o", tmp_path / "out.mp4", "--detector", "faces")
    assert result.exit_code == 2
    assert one_error_line(result) == "error: --detector faces needs the optional extra: pip install 'animate-cli[face]'"


def test_a_bad_driving_video_is_one_line(tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video")
    result = invoke(tmp_path / "notes.mp4", "-o", tmp_path / "out.mp4")
    assert result.exit_code == 2 and "notes.mp4" in one_error_line(result)


def test_help_loads_no_heavy_module():
    import subprocess
    import sys

    code = ("import sys; from animate_cli.cli import main; sys.argv = ['animate', 'crop', '--help']\n"
            "try:\n    main()\nexcept SystemExit: pass\n"
            "assert not any(m in sys.modules for m in ('numpy', 'torch', 'av', 'PIL'))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
