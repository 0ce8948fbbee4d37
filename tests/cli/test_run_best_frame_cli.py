"""`animate run --find-best-frame`: the frame chosen, and output identical to `--ref-frame` at that frame."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from animate_cli.cli import cli
from animate_cli.landmarks import face_alignment_available
from tests.test_inspection import single_thread  # noqa: F401 - autouse fixture
from tests.test_pipeline import random_frames


def invoke(*args):
    return CliRunner().invoke(cli, ["run", *[str(a) for a in args]])


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def frames_in(folder):
    return np.stack([np.asarray(Image.open(path)) for path in sorted(folder.glob("*.png"))])


@pytest.fixture
def scene(tmp_path):
    """A folder of seven 64 x 64 driving frames; frames 1 and 4 also saved as source images."""
    driving = tmp_path / "driving"
    driving.mkdir()
    frames = random_frames(7, seed=21)
    for index, frame in enumerate(frames):
        Image.fromarray(frame).save(driving / f"{index:02d}.png")
    for index in (1, 4):
        Image.fromarray(frames[index]).save(tmp_path / f"pose{index}.png")
    Image.fromarray(random_frames(1, seed=99)[0]).save(tmp_path / "stranger.png")
    return driving


@pytest.mark.parametrize("source, expected", [("pose4.png", 4), ("stranger.png", None)])
def test_best_frame_output_equals_the_ref_frame_output(tmp_path, scene, tiny_checkpoint, source, expected):
    best = tmp_path / "best"
    result = invoke(tmp_path / source, scene, "-o", f"{best}/", "-c", tiny_checkpoint, "--find-best-frame", "--json")
    assert result.exit_code == 0, result.output
    chosen = json.loads(result.stdout)["ref_frame"]
    if expected is not None:
        assert chosen == expected  # the source is that driving frame: its keypoints match exactly
    fixed = tmp_path / "fixed"
    result = invoke(tmp_path / source, scene, "-o", f"{fixed}/", "-c", tiny_checkpoint, "--ref-frame", chosen)
    assert result.exit_code == 0, result.output
    assert len(frames_in(best)) == 7 and np.array_equal(frames_in(best), frames_in(fixed))


def test_each_source_gets_its_own_best_frame(tmp_path, scene, tiny_checkpoint):
    out = tmp_path / "out"
    out.mkdir()
    result = invoke(tmp_path / "pose1.png", tmp_path / "pose4.png", scene, "-o", f"{out}/", "-c", tiny_checkpoint,
                    "--best-frame-by", "keypoints", "--json")  # --best-frame-by implies --find-best-frame
    assert result.exit_code == 0, result.output
    reports = {json.loads(line)["output"]: json.loads(line) for line in result.stdout.splitlines()}
    assert {r["ref_frame"] for r in reports.values()} == {1, 4}
    assert all(r["frames"] == 7 for r in reports.values())
    single = tmp_path / "single.mp4"
    result = invoke(tmp_path / "pose1.png", scene, "-o", single, "-c", tiny_checkpoint, "--find-best-frame")
    assert result.exit_code == 0 and "best frame 1" in result.stderr


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--find-best-frame", "--absolute"], "drop --absolute"),
        (["--find-best-frame", "--ref-frame", "2"], "drop --ref-frame"),
    ],
)
def test_conflicting_options_give_one_line_and_exit_2(tmp_path, scene, tiny_checkpoint, extra, message):
    result = invoke(tmp_path / "pose1.png", scene, "-o", tmp_path / "out.mp4", "-c", tiny_checkpoint, *extra)
    assert result.exit_code == 2 and message in one_error_line(result)
    assert not (tmp_path / "out.mp4").exists()


def test_landmarks_need_the_extra(tmp_path, scene, tiny_checkpoint):
    if face_alignment_available():
        pytest.skip("face-alignment is installed here")
    result = invoke(tmp_path / "pose1.png", scene, "-o", tmp_path / "out.mp4", "-c", tiny_checkpoint,
                    "--find-best-frame", "--best-frame-by", "landmarks")
    assert result.exit_code == 2
    assert one_error_line(result) == (
        "error: --best-frame-by landmarks needs the optional extra: pip install 'animate-cli[face]'")
    assert not (tmp_path / "out.mp4").exists()


def test_help_lists_the_new_options():
    result = invoke("--help")
    for option in ("--find-best-frame", "--best-frame-by", "--landmarks-weights", "--source-box"):
        assert option in result.output
