"""Shared material for the robustness tests: a tiny model and clips made once per session, and CLI helpers.

Most cases run the CLI in this process (CliRunner: fast, the same code path). Cases about the process itself
(signals, resource limits, other users, argv bytes) run ``python -m animate_cli`` in a subprocess.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from animate_cli.cli import cli
from tests.conftest import TINY_CONFIG_YAML, perturbed_model
from tests.media.conftest import make_video, pattern

#: Frames of the long driving clip (2 minutes at 25 fps): the tiny model animates them in about 15 s on two busy
#: cores, and a run stopped by a signal is stopped long before its end.
LONG_FRAMES = 3000


@pytest.fixture(scope="session")
def material(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("robustness")


@pytest.fixture(scope="session")
def model_file(material: Path) -> Path:
    """The tiny first-order model of tests/conftest.py, saved once for the session."""
    from animate_cli.checkpoint import save_checkpoint
    from animate_cli.config import config_from_yaml

    model = perturbed_model(config_from_yaml(TINY_CONFIG_YAML, name="tiny"))
    return save_checkpoint(model, material / "tiny.safetensors")


@pytest.fixture(scope="session")
def face(material: Path) -> Path:
    path = material / "face.png"
    Image.fromarray(pattern(3, 64, 64)).save(path)
    return path


@pytest.fixture(scope="session")
def talk(material: Path) -> Path:
    """12 frames of 64x64 H.264 with 0.6 s of AAC."""
    return make_video(material / "talk.mp4", frames=12, size=(64, 64), audio_codec="aac", audio_seconds=0.6)


@pytest.fixture(scope="session")
def long_clip(material: Path) -> Path:
    """LONG_FRAMES frames of 64x64 H.264."""
    return make_video(material / "long.mp4", frames=LONG_FRAMES, size=(64, 64))


def invoke(*args: object) -> Result:
    """``animate ARGS`` in this process; exceptions are the CLI's to report, as in a real run."""
    return CliRunner().invoke(cli, list(map(argument, args)))


def animate(*args: object, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """``python -m animate_cli ARGS`` in a subprocess (args may be bytes: argv as the OS passes it)."""
    return subprocess.run(command(*args), capture_output=True, timeout=timeout, **kwargs)


def command(*args: object) -> list:
    """The argv of ``python -m animate_cli ARGS``: paths and numbers as text, bytes (non-UTF-8 names) as they are."""
    return [sys.executable, "-m", "animate_cli", *map(argument, args)]


def argument(arg: object) -> str | bytes:
    """A command-line argument: paths as they are (bytes stay bytes), anything else (numbers) as text."""
    return os.fspath(arg) if isinstance(arg, (bytes, str, os.PathLike)) else str(arg)


def clean_failure(stderr: str | bytes, pattern: str) -> str:
    """Assert ``stderr`` is one ``error: ...`` line matching ``pattern`` and no traceback; return the line."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    assert "Traceback" not in text
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def leftovers(folder: Path) -> list[str]:
    """Hidden temporary files or folders a writer could have left in ``folder``."""
    return sorted(name for name in os.listdir(folder) if ".tmp-" in name)
