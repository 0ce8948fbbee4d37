"""`animate run` end to end on real media made by the tests, with a tiny random-weight checkpoint."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from animate_cli.cli import cli
from animate_cli.media.audio import audio_duration
from animate_cli.media.video import open_video, probe
from animate_cli.pipeline import choose_precision
from tests.conftest import perturbed_model
from tests.media.conftest import VFR_TIMES, make_audio, make_video, pattern
from tests.test_pipeline import direct


def invoke(*args, **kwargs):
    return CliRunner().invoke(cli, [str(a) for a in args], **kwargs)


@pytest.fixture
def source_png(tmp_path):
    path = tmp_path / "face.png"
    rgba = np.dstack([pattern(3, 70, 50), np.full((50, 70), 200, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(path)
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return {
        "mp4": make_video(folder / "talk.mp4", frames=12, audio_codec="aac", audio_seconds=1.0),
        "vfr": make_video(folder / "vfr.mkv", times=VFR_TIMES, audio_codec="aac", audio_seconds=1.5),
        "odd": make_video(folder / "odd.mp4", size=(65, 47), pix_fmt="yuv444p"),
        "gif": make_video(folder / "anim.gif", codec="gif", pix_fmt="rgb8"),
    }


def frames_of(path):
    with open_video(path) as reader:
        return [(frame.time, frame.image) for frame in reader]


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_mp4_with_audio(tmp_path, source_png, clips, tiny_checkpoint):
    out = tmp_path / "result.mp4"
    # fp32: in bf16 the tiny random model's small motions can round away (checked below: frames must vary)
    result = invoke("run", source_png, clips["mp4"], "-o", out, "--checkpoint", tiny_checkpoint, "--json",
                    "--precision", "fp32")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["output"] == str(out) and report["frames"] == 12 and report["device"] == "cpu"
    assert report["precision"] == "fp32"
    assert report["checkpoint"] == str(tiny_checkpoint)
    info = probe(out)
    assert info.frame_count == 12 and info.fps == pytest.approx(25) and info.width == info.height == 64
    assert info.duration == pytest.approx(12 / 25, abs=1 / 25)
    assert info.has_audio and abs(audio_duration(out) - 12 / 25) <= 1 / 25
    images = np.stack([image for _, image in frames_of(out)])
    # a random tiny model moves little, but the frames must follow the driver: not one picture repeated (after
    # H.264 neighbouring frames of a near-still result may coincide, so count variation, not distinct frames)
    assert len({image.tobytes() for image in images}) > 1 and images.std(axis=0).mean() > 0.1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_default_output_name_and_no_audio(tmp_path, source_png, clips, tiny_checkpoint, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("run", source_png, clips["mp4"], "--checkpoint", tiny_checkpoint, "--no-audio", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.output == ""
    info = probe(tmp_path / "face_talk.mp4")
    assert info.frame_count == 12 and not info.has_audio


def test_variable_frame_rate_timestamps_are_kept(tmp_path, source_png, clips, tiny_checkpoint):
    out = tmp_path / "vfr.mkv"
    assert invoke("run", source_png, clips["vfr"], "-o", out, "--checkpoint", tiny_checkpoint).exit_code == 0
    times = [t for t, _ in frames_of(out)]
    assert times == pytest.approx(VFR_TIMES, abs=0.002)


def test_odd_sizes_gif_in_and_out_side_by_side(tmp_path, source_png, clips, tiny_checkpoint):
    out = tmp_path / "odd.mp4"
    result = invoke("run", source_png, clips["odd"], "-o", out, "-c", tiny_checkpoint, "--layout", "side-by-side")
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert (info.width, info.height) == (192, 64)
    gif = tmp_path / "out.gif"
    result = invoke("run", source_png, clips["gif"], "-o", gif, "-c", tiny_checkpoint, "--output-size", "100x80")
    assert result.exit_code == 0, result.output
    info = probe(gif)
    assert (info.width, info.height) == (100, 80) and info.frame_count == 12


def test_frame_folder_in_png_folder_out_matches_the_library(tmp_path, tiny_config, source_png):
    from animate_cli.checkpoint import save_checkpoint

    model = perturbed_model(tiny_config, seed=4)
    checkpoint = save_checkpoint(model, tmp_path / "m.safetensors")
    driving = tmp_path / "frames"
    driving.mkdir()
    frames = [pattern(i, 64, 64) for i in range(6)]
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(driving / f"f{i}.png")
    source = np.asarray(Image.open(source_png).convert("RGBA"), dtype=np.float64)
    # what the CLI does to the source: alpha over white, centre square crop, resize to 64
    from animate_cli.media.images import read_image
    from animate_cli.media.resize import fit_image

    source_fitted = fit_image(read_image(source_png), 64, "crop")
    assert source.shape[:2] == (50, 70)
    for mode, flags in (("relative", ["--relative", "--no-adapt-scale"]), ("absolute", ["--absolute"])):
        out = tmp_path / f"{mode}/"
        result = invoke("run", source_png, driving, "-o", f"{out}/", "-c", checkpoint, *flags)
        assert result.exit_code == 0, result.output
        ours = np.stack([np.asarray(Image.open(p)) for p in sorted(out.glob("*.png"))])
        expected = direct(model, source_fitted, frames, relative=mode == "relative", adapt=False)
        assert ours.shape == expected.shape
        assert np.abs(ours.astype(int) - expected).max() <= 1


def test_relative_ref_frame_and_absolute_differ(tmp_path, source_png, clips, tiny_checkpoint):
    outputs = {}
    for name, flags in (("rel0", []), ("rel5", ["--ref-frame", "5"]), ("abs", ["--absolute"])):
        out = tmp_path / f"{name}/"
        assert invoke("run", source_png, clips["mp4"], "-o", f"{out}/", "-c", tiny_checkpoint, *flags).exit_code == 0
        outputs[name] = np.stack([np.asarray(Image.open(p)) for p in sorted(out.glob("*.png"))])
    assert not np.array_equal(outputs["rel0"], outputs["rel5"])
    assert not np.array_equal(outputs["rel0"], outputs["abs"])


def test_several_sources_write_several_files(tmp_path, source_png, clips, tiny_checkpoint):
    second = tmp_path / "other.jpg"
    Image.fromarray(pattern(9, 80, 80)).save(second)
    out = tmp_path / "results"
    out.mkdir()
    result = invoke("run", source_png, second, clips["mp4"], "-o", f"{out}/", "-c", tiny_checkpoint, "--json")
    assert result.exit_code == 0, result.output
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(Path(r["output"]).name for r in reports) == ["face_talk.mp4", "other_talk.mp4"]
    assert {r["precision"] for r in reports} == {choose_precision("auto", torch.device("cpu"))}  # the default
    assert all(probe(r["output"]).frame_count == 12 for r in reports)
    result = invoke("run", source_png, second, clips["mp4"], "-o", tmp_path / "single.mp4", "-c", tiny_checkpoint)
    assert result.exit_code == 2 and "need an output folder" in one_error_line(result)


def test_webm_output_reencodes_audio(tmp_path, source_png, clips, tiny_checkpoint):
    out = tmp_path / "result.webm"
    assert invoke("run", source_png, clips["mp4"], "-o", out, "-c", tiny_checkpoint).exit_code == 0
    info = probe(out)
    assert info.has_audio and info.audio_codec == "opus" and info.frame_count == 12


def bad_inputs(tmp_path, clips):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    huge = tmp_path / "huge.png"
    Image.new("L", (1, 1)).save(huge)
    data = bytearray(huge.read_bytes())  # patch the IHDR size to 20000x20000 and fix its CRC
    import struct
    import zlib

    data[16:24] = struct.pack(">II", 20000, 20000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    huge.write_bytes(bytes(data))
    truncated = tmp_path / "cut.mp4"
    blob = clips["mp4"].read_bytes()
    truncated.write_bytes(blob[: len(blob) // 3])
    sound = make_audio(tmp_path / "sound.m4a")
    return {"text": text, "huge": huge, "truncated": truncated, "sound": sound}


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing-source", "no such file"),
        ("text-source", "not an image"),
        ("huge-source", "limit"),
        ("missing-driving", "no such file"),
        ("audio-only", "no video stream"),
        ("truncated", "truncated|not a readable video|corrupt"),
        ("missing-folder", "does not exist"),
        ("exists", r"exists \(use --overwrite\)"),
        ("bad-box", "x,y,w,h"),
    ],
)
def test_bad_inputs_give_one_line_and_exit_2(tmp_path, source_png, clips, tiny_checkpoint, case, message):
    bad = bad_inputs(tmp_path, clips)
    out = tmp_path / "out.mp4"
    source, driving, extra = source_png, clips["mp4"], []
    if case == "missing-source":
        source = tmp_path / "nope.png"
    elif case == "text-source":
        source = bad["text"]
    elif case == "huge-source":
        source = bad["huge"]
    elif case == "missing-driving":
        driving = tmp_path / "nope.mp4"
    elif case == "audio-only":
        driving = bad["sound"]
    elif case == "truncated":
        driving = bad["truncated"]
    elif case == "missing-folder":
        out = tmp_path / "no" / "such" / "out.mp4"
    elif case == "exists":
        out.write_bytes(b"keep me")
    elif case == "bad-box":
        extra = ["--driving-box", "1,2,3"]
    result = invoke("run", source, driving, "-o", out, "-c", tiny_checkpoint, *extra)
    assert result.exit_code == 2, result.output
    if case == "bad-box":
        assert message in result.output  # click's usage error
    else:
        import re

        assert re.search(message, one_error_line(result)), result.stderr
    if case == "exists":
        assert out.read_bytes() == b"keep me"
    elif case != "bad-box":
        assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")] if out.parent.exists() else True


def test_a_failure_mid_run_leaves_no_partial_file(tmp_path, source_png, tiny_checkpoint):
    driving = tmp_path / "frames"
    driving.mkdir()
    for i in range(10):
        Image.fromarray(pattern(i)).save(driving / f"{i:03d}.png")
    (driving / "005.png").write_text("broken")
    out = tmp_path / "out.mp4"
    result = invoke("run", source_png, driving, "-o", out, "-c", tiny_checkpoint, "--batch-size", "2")
    assert result.exit_code == 2
    assert "005.png" in one_error_line(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["face.png", "frames", "tiny.safetensors"]


def test_missing_default_model_says_how_to_pass_one(tmp_path, source_png, clips, monkeypatch):
    monkeypatch.setenv("ANIMATE_CHECKPOINT_DIR", str(tmp_path / "empty"))
    result = invoke("run", source_png, clips["mp4"], "-o", tmp_path / "out.mp4")
    assert result.exit_code == 2
    assert "--checkpoint FILE" in one_error_line(result)


def test_published_checkpoint_with_config(tmp_path, source_png, clips, tiny_config):
    from animate_cli.config import config_to_yaml
    from tests.test_checkpoint import write_published

    write_published(tmp_path / "m.pth.tar", perturbed_model(tiny_config))
    (tmp_path / "tiny.yaml").write_text(config_to_yaml(tiny_config))
    out = tmp_path / "out.mp4"
    result = invoke("run", source_png, clips["mp4"], "-o", out, "-c", tmp_path / "m.pth.tar",
                    "--config", tmp_path / "tiny.yaml", "--no-align-corners", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert probe(out).frame_count == 12
    result = invoke("run", source_png, clips["mp4"], "-o", tmp_path / "x.mp4", "-c", tmp_path / "m.pth.tar")
    assert result.exit_code == 2 and "needs --config" in one_error_line(result)


def test_help_documents_exit_codes():
    result = invoke("run", "--help")
    assert result.exit_code == 0 and "130 interrupted" in result.output and "--ref-frame" in result.output
    assert torch is not None  # torch is imported by this module anyway; --help speed is tested elsewhere
