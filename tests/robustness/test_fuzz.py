"""Fuzzing the readers with mutated files: a clean error (an AnimateError) or success, never a crash or a hang.

Each valid file (PNG, JPEG, MP4, GIF, YAML config, .safetensors, .pth.tar) is mutated by a few byte flips,
truncations, insertions and overwrites, half of them aimed at the file's first bytes, where headers and indexes
live. The readers are called directly, as the CLI calls them; one test also runs ``animate checkpoints info``.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from animate_cli.checkpoint import load_checkpoint, save_checkpoint
from animate_cli.config import config_from_yaml, load_config
from animate_cli.errors import AnimateError, CheckpointError
from animate_cli.media.images import read_image
from animate_cli.media.video import open_video
from tests.conftest import TINY_CONFIG_YAML, perturbed_model
from tests.media.conftest import make_video, pattern
from tests.robustness.conftest import invoke
from tests.test_checkpoint import write_published

#: Bytes at the start of a file that half of the mutations aim at (headers, the MP4 index moved to the front).
HEAD = 2048
#: A reader still busy after this many seconds is taken for hung (decoding these small files takes milliseconds).
HANG_SECONDS = 30

FUZZ = settings(
    max_examples=30,
    deadline=timedelta(seconds=10),  # generous: the suite shares two cores with other work
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)

# (kind, aimed at the head?, position before the modulo, bytes to insert or write (their first byte picks a bit))
MUTATIONS = st.lists(
    st.tuples(st.sampled_from(["flip", "truncate", "insert", "overwrite"]), st.booleans(), st.integers(0, 2**24),
              st.binary(min_size=1, max_size=8)),
    min_size=1, max_size=4,
)


def mutate(data: bytes, mutations: list[tuple[str, bool, int, bytes]]) -> bytes:
    blob = bytearray(data)
    for kind, in_head, position, payload in mutations:
        at = position % max(1, min(len(blob), HEAD) if in_head else len(blob))
        if kind == "flip" and blob:
            blob[at] ^= 1 << (payload[0] % 8)
        elif kind == "truncate":
            del blob[at:]
        elif kind == "insert":
            blob[at:at] = payload
        elif kind == "overwrite":
            blob[at : at + len(payload)] = payload
    return bytes(blob)


class Hang(BaseException):
    """Raised in a reader that outlived HANG_SECONDS; a BaseException, so no reader's error handling swallows it."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def hang(signum, frame):  # noqa: ARG001 - signal handler signature
        raise Hang(f"still reading after {seconds} s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def read_video(path: Path) -> None:
    with open_video(path) as reader:
        for frame in reader:
            assert frame.image.dtype == np.uint8 and frame.image.ndim == 3
            if frame.index >= 500:  # the valid clips have 8 frames; more is garbage, not a hang
                break


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Callable[[Path], object]]]:
    """Per file kind: the valid file and the reader to try its mutants with (paths, so failure reports stay short)."""
    folder = tmp_path_factory.mktemp("originals")
    noise = np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "a.png")
    Image.fromarray(pattern(2, 48, 48)).save(folder / "a.jpg", quality=90)
    make_video(folder / "a.mp4", frames=8, size=(32, 32), container_options={"movflags": "+faststart"})
    make_video(folder / "a.gif", frames=8, size=(32, 32), codec="gif", pix_fmt="rgb8")
    tiny = config_from_yaml(TINY_CONFIG_YAML, name="tiny")
    save_checkpoint(perturbed_model(tiny), folder / "a.safetensors", provenance={"purpose": "fuzzing"})
    write_published(folder / "a.pth.tar", perturbed_model(tiny))
    (folder / "a.yaml").write_text(TINY_CONFIG_YAML)
    readers: dict[str, Callable[[Path], object]] = {
        ".png": read_image, ".jpg": read_image, ".mp4": read_video, ".gif": read_video, ".yaml": load_config,
        ".safetensors": load_checkpoint, ".pth.tar": lambda path: load_checkpoint(path, config=tiny),
    }
    return {suffix: (folder / f"a{suffix}", read) for suffix, read in readers.items()}


@pytest.fixture(scope="module")
def mutants(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mutants")


def survives(suffix: str, mutations, originals, mutants: Path) -> None:
    """The reader of ``suffix`` on the mutant either succeeds or raises an AnimateError, in bounded time."""
    original, read = originals[suffix]
    path = mutants / f"mutant{suffix}"
    path.write_bytes(mutate(original.read_bytes(), mutations))
    with time_limit(HANG_SECONDS):
        try:
            read(path)
        except AnimateError:
            pass  # a clean, reported refusal


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
@FUZZ
@given(mutations=MUTATIONS)
def test_images(suffix, mutations, originals, mutants):
    survives(suffix, mutations, originals, mutants)


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
@FUZZ
@given(mutations=MUTATIONS)
def test_videos(suffix, mutations, originals, mutants):
    survives(suffix, mutations, originals, mutants)


@FUZZ
@given(mutations=MUTATIONS)
def test_yaml_configs(mutations, originals, mutants):
    survives(".yaml", mutations, originals, mutants)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth.tar"])
@FUZZ
@given(mutations=MUTATIONS)
def test_checkpoints(suffix, mutations, originals, mutants):
    survives(suffix, mutations, originals, mutants)


@pytest.mark.parametrize("field", ["config", "provenance"])
def test_safetensors_metadata_that_is_not_json(field, tmp_path, tiny_config):
    """The header stays valid JSON while a field inside it does not: byte mutations rarely hit exactly this."""
    from animate_cli.checkpoint import checkpoint_metadata
    from safetensors.torch import save_file

    model = perturbed_model(tiny_config)
    metadata = {**checkpoint_metadata(model), field: "{not json"}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "m.safetensors"), metadata)
    with pytest.raises(CheckpointError, match=f"its metadata '{field}' is not valid JSON"):
        load_checkpoint(tmp_path / "m.safetensors")


@settings(FUZZ, max_examples=8)
@given(suffix=st.sampled_from([".safetensors", ".pth.tar"]), mutations=MUTATIONS)
def test_checkpoints_info_on_mutants(suffix, mutations, originals, mutants):
    path = mutants / f"cli{suffix}"
    path.write_bytes(mutate(originals[suffix][0].read_bytes(), mutations))
    config = ["--config", originals[".yaml"][0]] if suffix == ".pth.tar" else []
    with time_limit(HANG_SECONDS):
        result = invoke("checkpoints", "info", path, *config)
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        [line] = result.stderr.splitlines()
        assert line.startswith("error: ")
