"""A corpus of bad (and odd but good) inputs, generated here, through ``animate run``.

A bad input must give its exit code, one clear ``error:`` line on stderr and no traceback, and leave no output
(nor a temporary file) behind. The odd but good ones (grey, RGBA, 16-bit, CMYK, non-UTF-8 and spaced paths)
must simply work.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from animate_cli.config import config_from_yaml
from animate_cli.media.video import probe
from tests.conftest import TINY_CONFIG_YAML, perturbed_model
from tests.media.conftest import make_audio, make_video, pattern
from tests.robustness.conftest import animate, clean_failure, command, invoke, leftovers
from tests.test_checkpoint import write_published


def huge_png(path: Path, side: int = 20000) -> Path:
    """A 1x1 PNG whose header claims side x side (CRC fixed, so only the size is a lie)."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", side, side)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def huge_jpeg(path: Path, side: int = 20000) -> Path:
    """A small JPEG whose frame header (SOF0) claims side x side."""
    Image.fromarray(pattern(0, 16, 16)).save(path, quality=90)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", side, side)
    path.write_bytes(bytes(data))
    return path


def zero_frame_video(path: Path, like: Path) -> Path:
    """A video stream holding only P-frames: without a keyframe the decoder outputs nothing."""
    with av.open(str(like)) as source, av.open(str(path), "w") as output:
        stream = output.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.size and not packet.is_keyframe:
                packet.stream = stream
                output.mux(packet)
    return path


def latin1_tags(source: Path, target: Path) -> Path:
    """A copy of an MP4 whose encoder and handler-name tags start with a Latin-1 byte (never valid UTF-8)."""
    data = bytearray(source.read_bytes())
    for tag in (b"Lavf", b"VideoHandler", b"SoundHandler"):
        data[data.index(tag)] = 0xE9  # é
    target.write_bytes(bytes(data))
    return target


def truncated(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def corpus(model_file: Path, talk: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("corpus")
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)  # incompressible: data, not header
    Image.fromarray(noise).save(folder / "noise.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.png").write_text("this is text, not a picture\n")
    Image.new("RGB", (1, 1)).save(folder / "dot.png")
    Image.fromarray(pattern(4, 64, 64)).convert("L").save(folder / "grey.png")
    rgba = np.dstack([pattern(4, 64, 64), np.linspace(0, 255, 64 * 64).reshape(64, 64).astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "rgba.png")
    Image.fromarray((np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)).save(folder / "deep.png")
    Image.fromarray(pattern(4, 64, 64)).convert("CMYK").save(folder / "cmyk.jpg")
    full_mp4 = make_video(folder / "full.mp4", frames=30, size=(64, 64))  # index (moov) at the end
    write_published(folder / "tiny.pth.tar", perturbed_model(config_from_yaml(TINY_CONFIG_YAML)))
    (folder / "tiny.yaml").write_text(TINY_CONFIG_YAML)
    return {
        "empty": folder / "empty.png",
        "text": folder / "notes.png",
        "truncated-png": truncated(folder / "noise.png", folder / "cut.png"),
        "dot": folder / "dot.png",
        "huge-png": huge_png(folder / "huge.png"),
        "huge-jpeg": huge_jpeg(folder / "huge.jpg"),
        "grey": folder / "grey.png",
        "rgba": folder / "rgba.png",
        "deep": folder / "deep.png",
        "cmyk": folder / "cmyk.jpg",
        "truncated-mp4": truncated(full_mp4, folder / "cut.mp4"),
        "audio-only": make_audio(folder / "sound.m4a"),
        "zero-frames": zero_frame_video(folder / "no_frames.mkv", talk),
        "latin1-tags": latin1_tags(talk, folder / "latin1.mp4"),
        "published": folder / "tiny.pth.tar",
        "truncated-pth": truncated(folder / "tiny.pth.tar", folder / "cut.pth.tar"),
        "truncated-safetensors": truncated(model_file, folder / "cut.safetensors"),
        "tiny-yaml": folder / "tiny.yaml",
        "unknown-key-yaml": write(folder / "unknown.yaml", TINY_CONFIG_YAML + "colour_params: {hue: 3}\n"),
        "wrong-type-yaml": write(folder / "wrong.yaml", TINY_CONFIG_YAML.replace("num_kp: 5", "num_kp: five")),
    }


# case: (source, driving, options, message); names are corpus keys or, if not, missing files in the test's folder;
# "face" and "talk" are the good files. Without options, the run uses the tiny model.
FAILURES = {
    "missing-source": ("missing.png", "talk", [], r"missing\.png: no such file"),
    "empty-source": ("empty", "talk", [], r"empty\.png: is empty"),
    "text-named-png": ("text", "talk", [], r"notes\.png: not an image"),
    "truncated-png": ("truncated-png", "talk", [], r"cut\.png: corrupt or truncated image"),
    "1x1-image": ("dot", "talk", [], r"dot\.png: image is too small \(1x1"),
    "missing-driving": ("face", "missing.mp4", [], r"missing\.mp4: no such file"),
    "empty-driving": ("face", "empty", [], r"empty\.png: is empty"),
    "truncated-mp4": ("face", "truncated-mp4", [], r"cut\.mp4: not a readable video"),
    "audio-only": ("face", "audio-only", [], r"sound\.m4a: has no video stream"),
    "zero-frames": ("face", "zero-frames", [], r"no_frames\.mkv: has no frames"),
    "other-config": ("face", "talk", ["-c", "published", "--config", "vox-256"],
                     r"tiny\.pth\.tar does not fit config 'vox-256': shape mismatch"),
    "truncated-pth": ("face", "talk", ["-c", "truncated-pth", "--config", "tiny-yaml"],
                      r"cut\.pth\.tar: not a readable checkpoint"),
    "truncated-safetensors": ("face", "talk", ["-c", "truncated-safetensors"], r"cut\.safetensors: .*truncated"),
    "yaml-unknown-key": ("face", "talk", ["-c", "published", "--config", "unknown-key-yaml"],
                         r"unknown config key 'colour_params'"),
    "yaml-wrong-type": ("face", "talk", ["-c", "published", "--config", "wrong-type-yaml"],
                        r"'model_params\.common_params\.num_kp' must be an integer, got 'five'"),
}


@pytest.mark.parametrize("case", FAILURES)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, corpus, face, talk, model_file, tmp_path):
    source, driving, extra, message = FAILURES[case]
    known = {**corpus, "face": face, "talk": talk}

    def path(name: str) -> Path:
        return known.get(name, tmp_path / name)

    options = [path(a) if a in known else a for a in extra]
    out = tmp_path / "out.mp4"
    result = invoke("run", path(source), path(driving), "-o", out, *(options or ["-c", model_file]))
    assert result.exit_code == 2, result.output
    clean_failure(result.stderr, message)
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["huge-png", "huge-jpeg"])
def test_a_20000_pixel_image_is_refused_from_its_header_fast(name, corpus, talk, model_file, tmp_path):
    from animate_cli.errors import MediaError
    from animate_cli.media.images import read_image

    started = time.perf_counter()
    with pytest.raises(MediaError, match=r"20000x20000 is larger than|larger than the .*-pixel limit"):
        read_image(corpus[name])
    assert time.perf_counter() - started < 0.5  # decoding 400 million pixels would take seconds and 1.2 GB
    out = tmp_path / "out.mp4"
    result = invoke("run", corpus[name], talk, "-o", out, "-c", model_file)
    assert result.exit_code == 2
    clean_failure(result.stderr, "pixel limit")
    assert not out.exists()


def test_an_output_in_a_missing_folder(face, talk, model_file, tmp_path):
    out = tmp_path / "no" / "such" / "out.mp4"
    result = invoke("run", face, talk, "-o", out, "-c", model_file)
    assert result.exit_code == 2
    clean_failure(result.stderr, r"output folder .*/no/such does not exist")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("name", ["grey", "rgba", "deep", "cmyk"])
def test_grey_rgba_16_bit_and_cmyk_images_work(name, corpus, talk, model_file, tmp_path):
    out = tmp_path / "out.mp4"
    result = invoke("run", corpus[name], talk, "-o", out, "-c", model_file, "--quiet")
    assert result.exit_code == 0, result.output
    assert probe(out).frame_count == 12 and leftovers(tmp_path) == []


def test_a_video_whose_tags_are_not_utf8_works(corpus, face, model_file, tmp_path):
    out = tmp_path / "out.mp4"
    result = invoke("run", face, corpus["latin1-tags"], "-o", out, "-c", model_file, "--quiet")
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert info.frame_count == 12 and info.has_audio


def test_non_utf8_and_spaced_paths_work(face, talk, model_file, tmp_path):
    folder = tmp_path / "my clips"
    folder.mkdir()
    source = os.fsencode(folder) + b"/f\xffce \xe9t\xe9.png"  # \xff is never UTF-8; \xe9 is Latin-1 é
    shutil.copy(face, source)
    shutil.copy(talk, folder / "talk clip.mp4")
    out = os.fsencode(folder) + b"/r\xffsult.mp4"
    result = animate("run", source, folder / "talk clip.mp4", "-o", out, "-c", model_file, "--json")
    assert result.returncode == 0, result.stderr
    assert os.path.exists(out) and probe(os.fsdecode(out)).frame_count == 12
    assert b'"frames": 12' in result.stdout
    shutil.copy(face, folder / "my face.png")
    result = invoke("run", folder / "my face.png", folder / "talk clip.mp4", "-o", folder / "out put.mp4",
                    "-c", model_file)
    assert result.exit_code == 0, result.output
    assert probe(folder / "out put.mp4").frame_count == 12
    assert sorted(os.listdir(os.fsencode(folder))) == [
        b"f\xffce \xe9t\xe9.png", b"my face.png", b"out put.mp4", b"r\xffsult.mp4", b"talk clip.mp4"]


# ------------------------------------------------------------------------------------------- other users
def as_another_user(args: list) -> list:
    """Run ``args`` as an unprivileged user: root reads every file, so root drops to nobody in a user namespace."""
    if os.geteuid() != 0:
        return args
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "--user", "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root, and no user namespace to drop privileges in: root reads unreadable files")
    return [unshare, "--user", *args]


@pytest.mark.parametrize("what", ["source", "checkpoint"])
def test_an_unreadable_file(what, face, talk, model_file):
    # a world-traversable folder (pytest's own are private to root), holding a file nobody may read
    folder = Path(tempfile.mkdtemp(prefix="animate-unreadable-"))
    try:
        folder.chmod(0o755)
        secret = folder / ("face.png" if what == "source" else "model.safetensors")
        shutil.copy(face if what == "source" else model_file, secret)
        secret.chmod(0)
        if what == "source":
            args = command("run", secret, talk, "-o", folder / "out.mp4", "-c", model_file)
        else:
            args = command("checkpoints", "info", secret)
        result = subprocess.run(as_another_user(args), capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        clean_failure(result.stderr, rf"{secret.name}: permission denied")
        assert sorted(p.name for p in folder.iterdir()) == [secret.name]
    finally:
        shutil.rmtree(folder)


# ------------------------------------------------------------------------------------------- a full disk
def test_a_full_disk_by_file_size_limit(face, talk, model_file, tmp_path):
    """RLIMIT_FSIZE makes writes past 4 KiB fail with EFBIG (SIGXFSZ ignored), as a disk that is full when the
    muxer flushes its buffer, while the video is being finished."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    out = tmp_path / "out.mp4"
    result = animate("run", face, talk, "-o", out, "-c", model_file, preexec_fn=limit)
    assert result.returncode == 2, result.stderr
    clean_failure(result.stderr, r"out\.mp4: cannot write \(File too large\)")
    assert sorted(os.listdir(tmp_path)) == []


def test_a_full_disk_on_a_tiny_tmpfs(face, talk, model_file, tmp_path):
    """A real ENOSPC mid-run: PNG frames of 400x400 fill a 64 KiB tmpfs mounted in a private mount namespace."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "--user", "--map-root-user", "--mount", "true"],
                                         capture_output=True).returncode != 0:
        pytest.skip("needs unshare and unprivileged mount namespaces to mount a tiny tmpfs")
    full = tmp_path / "full"
    full.mkdir()
    script = f'mount -t tmpfs -o size=64k tmpfs "$1" && shift && "$@"; code=$?; ls -A "{full}"; exit $code'
    run_args = command("run", face, talk, "-o", f"{full}/frames/", "-c", model_file, "--output-size", "400x400")
    namespace = [unshare, "--user", "--map-root-user", "--mount"]
    result = subprocess.run([*namespace, "sh", "-c", script, "sh", str(full), *run_args],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    clean_failure(result.stderr, r"frames/: no space left on device while writing")
    assert result.stdout == ""  # ls of the full folder, inside the namespace: nothing left on it
