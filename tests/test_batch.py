"""The batch library: manifests, globbed sources, resuming and one job at a time through a real tiny model."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from PIL import Image

from animate_cli.animation import RunRequest
from animate_cli.batch import (
    BatchJob,
    JobSpec,
    output_exists,
    read_manifest,
    run_job,
    specs_from_sources,
)
from animate_cli.errors import BadInputError
from tests.media.conftest import make_video, pattern


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_manifest_paths_are_relative_to_its_folder(tmp_path):
    manifest = write(tmp_path / "jobs" / "list.csv", "\ufeff# faces for the demo\n"
                     "source, driving, output, fit, no-audio, Ref_Frame\n"
                     "a.png, clips/talk.mp4, out/a.mp4, pad, true, \n"
                     "\n"
                     f"{tmp_path / 'b.png'},talk.mp4,frames/,,,3\n"
                     "c.png,talk.mp4,out/c.mp4\n")
    folder = tmp_path / "jobs"
    specs = read_manifest(manifest)
    assert [(s.source, s.driving, s.output) for s in specs] == [
        (folder / "a.png", folder / "clips" / "talk.mp4", str(folder / "out" / "a.mp4")),
        (tmp_path / "b.png", folder / "talk.mp4", f"{folder}/frames/"),  # the trailing / keeps meaning PNG frames
        (folder / "c.png", folder / "talk.mp4", str(folder / "out" / "c.mp4")),
    ]
    # empty and missing cells keep the command line's value; names are normalised, values stay raw text
    assert [dict(s.options) for s in specs] == [{"fit": "pad", "no_audio": "true"}, {"ref_frame": "3"}, {}]
    assert [s.where for s in specs] == [f"{manifest} line 3", f"{manifest} line 5", f"{manifest} line 6"]


def test_json_lines_manifest_keeps_json_types(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = ('{"source": "a.png", "driving": "d.mp4", "output": "a.mp4", "relative": false, "ref_frame": 2}\n'
            '# a comment\n'
            '{"source": "b.png", "driving": "d.mp4", "output": "b.mp4", "layout": null}\n')
    for name in ("jobs.jsonl", "jobs.txt"):  # a .jsonl suffix, or a first row that is a JSON object
        write(tmp_path / name, text)
        specs = read_manifest(name)
        # a manifest in the working directory leaves its relative paths as written
        assert [(str(s.source), s.output) for s in specs] == [("a.png", "a.mp4"), ("b.png", "b.mp4")]
        assert [dict(s.options) for s in specs] == [{"relative": False, "ref_frame": 2}, {}]
        assert specs[1].where == f"{name} line 3"


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("m.csv", "source,driving,output,speed\na.png,d.mp4,a.mp4,2\n",
         r"line 2: unknown column 'speed' \(known: source"),
        ("m.csv", "source,driving\na.png,d.mp4\n", "line 2: needs a 'output' path"),
        ("m.csv", "source,driving,output\na.png,d.mp4,a.mp4,extra\n", "line 2: 4 cells but 3 columns"),
        ("m.csv", "source,driving,output\n", "holds no jobs"),
        ("m.csv", "# nothing but a comment\n\n", "holds no jobs"),
        ("m.csv", "", "is empty"),
        ("m.csv", "source,driving,output\na.png,d.mp4,same.mp4\nb.png,d.mp4,./same.mp4\n",
         r"m.csv line 3: writes .*same.mp4, as .*m.csv line 2 does already"),
        ("m.jsonl", '{"source": "a.png", "driving": "d.mp4", "output": "a.mp4"}\n{"source": \n',
         "line 2: not valid JSON"),
        ("m.jsonl", '["a.png", "d.mp4", "a.mp4"]\n', "line 1: expected a JSON object, got list"),
        ("m.jsonl", '{"source": 3, "driving": "d.mp4", "output": "a.mp4"}\n', "needs a 'source' path, as a string"),
    ],
)
def test_bad_manifests_name_the_line_and_the_problem(tmp_path, name, text, message):
    with pytest.raises(BadInputError, match=message):
        read_manifest(write(tmp_path / name, text))


def test_a_missing_manifest(tmp_path):
    with pytest.raises(BadInputError, match="jobs.csv: no such file"):
        read_manifest(tmp_path / "jobs.csv")


def test_non_utf8_file_names_survive_a_csv_manifest(tmp_path):
    manifest = tmp_path / "jobs.csv"
    manifest.write_bytes(b"source,driving,output\nf\xffce.png,d.mp4,out.mp4\n")
    [spec] = read_manifest(manifest)
    assert os.fsencode(spec.source) == os.fsencode(tmp_path) + b"/f\xffce.png"


def test_globbed_sources_in_natural_order_once_each(tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    for name in ("face10.png", "face2.png", "face1.jpg", "notes.txt"):
        (faces / name).write_bytes(b"x")
    (faces / "folder.png").mkdir()  # folders never match
    out = tmp_path / "out"
    out.mkdir()
    driving = tmp_path / "talk.mp4"
    driving.write_bytes(b"x")
    specs = specs_from_sources([str(faces / "face*.png"), str(faces / "*")], driving, f"{out}/")
    assert [s.source.name for s in specs] == ["face2.png", "face10.png", "face1.jpg", "notes.txt"]
    assert [Path(s.output) for s in specs] == [out / f"{s.source.stem}_talk.mp4" for s in specs]
    assert all(s.driving == driving and not s.options for s in specs)


def test_globbed_sources_refusals(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(BadInputError, match=r"no file matches '.*\*.jpg'"):
        specs_from_sources([str(tmp_path / "*.jpg")], tmp_path / "d.mp4", str(tmp_path))
    with pytest.raises(BadInputError, match="output folder .* does not exist"):
        specs_from_sources([str(tmp_path / "*.png")], tmp_path / "d.mp4", str(tmp_path / "missing"))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jpg").write_bytes(b"x")  # a.png and sub/a.jpg would both write a_d.mp4.mp4
    with pytest.raises(BadInputError, match=r"a.jpg: writes .*/a_d.mp4.mp4, as .*a.png does already"):
        specs_from_sources([str(tmp_path / "*.png"), str(tmp_path / "sub" / "*.jpg")], tmp_path / "d.mp4",
                           str(tmp_path))


def test_output_exists_for_files_frame_folders_and_patterns(tmp_path):
    assert not output_exists(str(tmp_path / "a.mp4"))
    (tmp_path / "a.mp4").write_bytes(b"x")
    assert output_exists(str(tmp_path / "a.mp4"))
    frames = tmp_path / "frames"
    frames.mkdir()
    assert not output_exists(f"{frames}/")  # an empty folder holds no result yet
    (frames / "000000.png").write_bytes(b"x")
    assert output_exists(f"{frames}/")
    assert not output_exists(str(tmp_path / "f%04d.png"))
    (tmp_path / "f0000.png").write_bytes(b"x")
    assert output_exists(str(tmp_path / "f%04d.png"))
    assert not output_exists(str(tmp_path / "a.xyz"))  # not an output at all: the job reports it


@pytest.fixture
def animator(tiny_config):
    import torch

    from animate_cli.pipeline import Animator
    from tests.conftest import perturbed_model

    return Animator(perturbed_model(tiny_config), torch.device("cpu"))


def job(tmp_path, number=1, source=None, output="out.mp4", **request_options) -> BatchJob:
    if source is None:
        source = tmp_path / "face.png"
        Image.fromarray(pattern(2, 64, 64)).save(source)
    driving = tmp_path / "talk.mp4"
    if not driving.exists():
        make_video(driving, frames=6, size=(64, 64))
    spec = JobSpec(str(source), Path(source), driving, str(tmp_path / output))
    request = RunRequest(sources=[spec.source], driving=driving, outputs=[spec.output], **request_options)
    return BatchJob(number, spec, request)


def test_run_job_ok_then_skipped_when_resuming(tmp_path, animator):
    ok = run_job(job(tmp_path), animator, checkpoint="tiny")
    assert ok.status == "ok" and ok.error is None and ok.result.frames == 6
    report = ok.to_json()
    assert report["job"] == 1 and report["status"] == "ok" and report["frames"] == 6 and report["checkpoint"] == "tiny"
    assert report["output"] == str(tmp_path / "out.mp4") and report["source"] == str(tmp_path / "face.png")
    skipped = run_job(job(tmp_path), animator, checkpoint="tiny", skip_existing=True)
    assert skipped.status == "skipped" and skipped.result is None
    assert skipped.to_json()["status"] == "skipped" and "frames" not in skipped.to_json()
    again = run_job(job(tmp_path), animator, checkpoint="tiny")  # without skip_existing, the output is in the way
    assert again.status == "failed" and "exists (use --overwrite)" in again.error


def test_failed_jobs_leave_nothing_behind_and_no_threads(tmp_path, animator):
    threads = threading.active_count()
    text = tmp_path / "text.png"
    text.write_text("not an image")
    bad_input = run_job(job(tmp_path, source=text), animator, checkpoint=None)
    assert bad_input.status == "failed" and bad_input.error == f"{text}: not an image (or a format that cannot be read)"
    assert bad_input.to_json()["error"] == bad_input.error
    # a programming error (an impossible fit mode) fails its job as an internal error instead of ending the batch
    bug = run_job(job(tmp_path, fit="diagonal"), animator, checkpoint=None)
    assert bug.status == "failed" and bug.error.startswith("internal error: ValueError: mode must be one of")
    assert "Traceback" in bug.trace
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.png", "talk.mp4", "text.png"]
    assert threading.active_count() == threads  # decoding and encoding threads ended with their job
