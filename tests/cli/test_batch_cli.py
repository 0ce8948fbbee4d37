"""`animate batch` end to end: manifests and globs, per-row options, failures, resuming, reports and exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from animate_cli.cli import cli
from animate_cli.media.video import open_video, probe
from tests.media.conftest import make_video, pattern


def invoke(*args, **kwargs):
    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


@pytest.fixture
def project(tmp_path):
    """faces/a.png, faces/b.jpg and faces/broken.png (text), clips/talk.mp4 (8 frames with sound), out/."""
    faces = tmp_path / "faces"
    faces.mkdir()
    Image.fromarray(pattern(1, 64, 64)).save(faces / "a.png")
    Image.fromarray(pattern(5, 80, 60)).save(faces / "b.jpg")
    (faces / "broken.png").write_text("not an image")
    (tmp_path / "clips").mkdir()
    make_video(tmp_path / "clips" / "talk.mp4", frames=8, size=(64, 64), audio_codec="aac", audio_seconds=0.5)
    (tmp_path / "out").mkdir()
    return tmp_path


def reports(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_manifest_rows_set_their_own_options(project, tiny_checkpoint):
    manifest = project / "jobs.csv"
    manifest.write_text("source,driving,output,layout,no_audio\n"
                        "faces/a.png,clips/talk.mp4,out/a.mp4,,\n"
                        "faces/b.jpg,clips/talk.mp4,out/b.mkv,side-by-side,true\n")
    result = invoke("batch", manifest, "-c", tiny_checkpoint, "--json", "--output-size", "96x96")
    assert result.exit_code == 0, result.output
    first, second = reports(result)
    assert first == {**first, "job": 1, "source": str(project / "faces/a.png"), "status": "ok", "error": None,
                     "output": str(project / "out/a.mp4"), "frames": 8, "checkpoint": str(tiny_checkpoint)}
    assert second["job"] == 2 and second["status"] == "ok" and second["driving"] == str(project / "clips/talk.mp4")
    a, b = probe(project / "out/a.mp4"), probe(project / "out/b.mkv")
    assert (a.width, a.height, a.frame_count, a.has_audio) == (96, 96, 8, True)  # the command line's --output-size
    assert (b.width, b.height, b.has_audio) == (96, 96, False)  # side-by-side, then resampled; no sound
    lines = result.stderr.splitlines()
    assert lines[0].split() == ["job", "status", "source", "output", "frames", "seconds", "error"]
    assert lines[-1] == "2 jobs: 2 ok, 0 failed, 0 skipped"


def decoded(path: Path) -> list:
    with open_video(path) as reader:
        return [frame.image for frame in reader]


def test_rows_find_the_best_frame_and_animate_a_box_as_animate_run_does(project, tiny_checkpoint):
    manifest = project / "jobs.csv"
    manifest.write_text("source,driving,output,best_frame_by,source_box\n"
                        "faces/a.png,clips/talk.mp4,out/best.mp4,keypoints,\n"
                        'faces/b.jpg,clips/talk.mp4,out/box.mp4,,"4,4,40,40"\n')
    result = invoke("batch", manifest, "-c", tiny_checkpoint, "--json")
    assert result.exit_code == 0, result.output
    best, box = reports(result)
    assert best["ref_frame"] is not None and box["ref_frame"] == 0  # the default reference: the first frame
    for job, options in ((best, ["--best-frame-by", "keypoints"]), (box, ["--source-box", "4,4,40,40"])):
        alone = project / "out" / f"alone_{Path(job['output']).name}"
        single = invoke("run", job["source"], job["driving"], "-o", alone, "-c", tiny_checkpoint, "--json", *options)
        assert single.exit_code == 0, single.output
        assert json.loads(single.stdout)["ref_frame"] == job["ref_frame"]
        assert all(np.array_equal(a, b) for a, b in zip(decoded(alone), decoded(Path(job["output"])), strict=True))
    assert (probe(box["output"]).width, probe(box["output"]).height) == (80, 60)  # pasted back into the source


def test_a_failed_job_is_reported_the_others_go_on_and_skip_existing_resumes(project, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(project)
    threads = threading.active_count()
    args = ("batch", "--sources", "faces/*.png", "--sources", "faces/*.jpg", "--driving", "clips/talk.mp4",
            "-o", "out/", "-c", tiny_checkpoint, "--json")
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert [(r["source"], r["status"]) for r in reports(result)] == [
        ("faces/a.png", "ok"), ("faces/broken.png", "failed"), ("faces/b.jpg", "ok")]
    failed = reports(result)[1]
    assert failed["error"] == "faces/broken.png: not an image (or a format that cannot be read)"
    assert failed["output"] == "out/broken_talk.mp4" and "frames" not in failed
    stderr = result.stderr.splitlines()
    assert f"job 2/3 failed: {failed['error']}" in stderr
    assert stderr[-2:] == ["3 jobs: 2 ok, 1 failed, 0 skipped", "error: 1 of 3 jobs failed"]
    assert sorted(p.name for p in (project / "out").iterdir()) == ["a_talk.mp4", "b_talk.mp4"]
    assert threading.active_count() == threads

    Image.fromarray(pattern(7, 64, 64)).save(project / "faces" / "broken.png")  # fixed: rerun, skipping the rest
    result = invoke(*args, "--skip-existing")
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in reports(result)] == ["skipped", "ok", "skipped"]
    assert result.stderr.splitlines()[-1] == "3 jobs: 1 ok, 0 failed, 2 skipped"
    assert probe(project / "out" / "broken_talk.mp4").frame_count == 8


def test_json_lines_manifest_from_another_folder_quietly(project, tiny_checkpoint, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    manifest = project / "jobs.jsonl"
    manifest.write_text(json.dumps({"source": "faces/a.png", "driving": "clips/talk.mp4", "output": "out/a/",
                                    "relative": False, "fit": "pad"}) + "\n")
    result = invoke("batch", manifest, "-c", tiny_checkpoint, "--quiet")
    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert len(list((project / "out" / "a").glob("*.png"))) == 8


@pytest.mark.parametrize(
    "row, message",
    [
        ("banana", r"jobs.csv line 3: Invalid value for '--fit': 'banana' is not one of"),
        ("crop,-2", r"line 3: Invalid value for '--ref-frame': -2 is not in the range"),
        (",,1;2", r"line 3: Invalid value for --driving-box: expected x,y,w,h"),
        (",,,maybe", r"line 3: Invalid value for '--relative': 'maybe' is not a valid"),
    ],
)
def test_a_bad_option_in_a_row_stops_the_batch_before_any_job(project, tiny_checkpoint, row, message):
    manifest = project / "jobs.csv"
    # a good row first: nothing runs, not even the jobs before the bad one
    manifest.write_text("source,driving,output,fit,ref_frame,driving_box,relative\n"
                        f"faces/b.jpg,clips/talk.mp4,out/b.mp4\nfaces/a.png,clips/talk.mp4,out/a.mp4,{row}\n")
    result = invoke("batch", manifest, "-c", tiny_checkpoint)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and re.search(message, line), line
    assert list((project / "out").iterdir()) == []


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "give a MANIFEST, or --sources GLOB with --driving VIDEO and -o FOLDER"),
        (("--sources", "faces/*.png"), "give a MANIFEST, or --sources GLOB with --driving VIDEO and -o FOLDER"),
        (("jobs.csv", "-o", "out/"), "give a MANIFEST or --sources with --driving and -o, not both"),
        (("--sources", "*.gif", "--driving", "clips/talk.mp4", "-o", "out/"), "no file matches '*.gif'"),
        (("--sources", "faces/*.png", "--driving", "clips/talk.mp4", "-o", "missing/"), "does not exist"),
        (("jobs.csv",), "jobs.csv: no such file"),
        (("jobs.csv", "--skip-existing", "--overwrite"), "--skip-existing and --overwrite contradict each other"),
    ],
)
def test_usage_mistakes_are_one_line_and_exit_2(project, tiny_checkpoint, monkeypatch, args, message):
    monkeypatch.chdir(project)
    result = invoke("batch", *args, "-c", tiny_checkpoint)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line and "Traceback" not in result.output


def test_a_bad_command_line_value_is_a_usage_error(project, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(project)
    result = invoke("batch", "--sources", "faces/a.png", "--driving", "clips/talk.mp4", "-o", "out/",
                    "-c", tiny_checkpoint, "--background", "plaid")
    assert result.exit_code == 2 and "Invalid value for --background: expected white" in result.stderr
    assert "line" not in result.stderr  # blamed on the option, not on a job


def test_a_missing_model_fails_before_any_job(project, tmp_path, monkeypatch):
    monkeypatch.chdir(project)
    monkeypatch.setenv("ANIMATE_CHECKPOINT_DIR", str(tmp_path / "none"))
    result = invoke("batch", "--sources", "faces/a.png", "--driving", "clips/talk.mp4", "-o", "out/")
    assert result.exit_code == 2 and "--checkpoint FILE" in result.stderr
    assert list((project / "out").iterdir()) == []


def test_debug_prints_a_failed_jobs_traceback(project, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(project)
    result = invoke("--debug", "batch", "--sources", "faces/broken.png", "--driving", "clips/talk.mp4", "-o", "out/",
                    "-c", tiny_checkpoint, "--quiet")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and "in read_image" in result.stderr


def test_help_lists_runs_options_too():
    result = invoke("batch", "--help")
    assert result.exit_code == 0
    for option in ("--sources", "--driving", "--skip-existing", "--checkpoint", "--fit", "--ref-frame", "--no-audio",
                   "--layout", "--json", "130 interrupted"):
        assert option in result.output


def test_the_example_script_is_valid_bash():
    # examples/batch.sh runs a loop and two batches (half a minute with the tiny model): checked by hand, parsed here
    script = Path(__file__).resolve().parents[2] / "examples" / "batch.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
