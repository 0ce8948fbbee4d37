"""Safety: checkpoints that would run code are refused, and Ctrl-C / SIGTERM stop cleanly.

Signals go to a real ``python -m animate_cli`` process once it is animating (its temporary output exists, and
its decoding and encoding threads have had time to fill their queues), on a driving clip long enough that the
run cannot finish first. A stopped run or batch exits 130 (SIGINT) or 143 (SIGTERM) and leaves no partial output
and no temporary file; a stopped training saves its checkpoint first.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from animate_cli.checkpoint import build_model
from animate_cli.cli import SUBCOMMANDS
from animate_cli.config import config_from_yaml
from animate_cli.media.video import probe
from tests.conftest import TINY_CONFIG_YAML
from tests.robustness.conftest import clean_failure, command, invoke, leftovers
from tests.test_checkpoint import RunsCode, write_published

# CPython quirk: a Ctrl-C landing while the main thread runs exec() or eval() on a string (lazy imports do, at
# the first frames) makes the interpreter end by re-raising SIGINT after our handler exited with 130. A shell shows
# both as 130, so both are accepted.
EXIT_CODES = {signal.SIGINT: (130, -signal.SIGINT), signal.SIGTERM: (143,)}
MESSAGES = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


class ExecsCode:
    """Unpickling this calls exec(): a payload that would run any Python at all."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("payload", [RunsCode, ExecsCode])
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(payload, zipped, face, talk, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth.tar"
    model = build_model(config_from_yaml(TINY_CONFIG_YAML))
    if zipped:
        write_published(evil, model, payload=payload(marker))
    else:  # the pre-1.6 pickle layout goes through another loader: refused just the same
        data = {"generator": model.generator.state_dict(), "kp_detector": model.kp_detector.state_dict(),
                "payload": payload(marker)}
        torch.save(data, evil, _use_new_zipfile_serialization=False)
    (tmp_path / "tiny.yaml").write_text(TINY_CONFIG_YAML)
    out = tmp_path / "out.mp4"
    result = invoke("run", face, talk, "-o", out, "-c", evil, "--config", tmp_path / "tiny.yaml")
    assert result.exit_code == 2, result.output
    clean_failure(result.stderr, r"evil\.pth\.tar: refused: unpickling it would need code .*never code")
    assert not marker.exists() and not out.exists()


def stop_when(
    args: list, ready: Callable[[int], bool], signum: int, settle: float = 0.0, timeout: float = 90
) -> subprocess.CompletedProcess:
    """Start ``animate ARGS``, wait until ``ready(pid)`` and ``settle`` seconds more, send ``signum``, and wait
    for the process to end."""
    process = subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready(process.pid):
            if process.poll() is not None:
                pytest.fail(f"the process ended before it could be stopped: {process.communicate()}")
            if time.monotonic() > deadline:
                pytest.fail("the process never got ready to be stopped")
            time.sleep(0.02)
        time.sleep(settle)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def writing(folder: Path) -> Callable[[int], bool]:
    """Ready once a writer's temporary output exists in ``folder``: the run is past loading, into the frames."""
    return lambda pid: bool(leftovers(folder))


#: Seconds from the temporary output's creation to the signal: the threads decoding ahead and encoding behind the
#: model are running by then (closing the video reader under the decoding thread used to crash PyAV), while the
#: long clip takes many seconds more.
SETTLE = 0.5


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("output", ["out.mp4", "frames/"])
def test_a_stopped_run_leaves_nothing(signum, output, face, long_clip, model_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    args = ["run", face, long_clip, "-o", f"{out}/{output}", "-c", model_file]
    result = stop_when(args, writing(out), signum, SETTLE)
    assert result.returncode in EXIT_CODES[signum], result.stderr
    assert result.stderr.strip() == MESSAGES[signum]
    assert os.listdir(out) == []


def holding_open(path: Path, seconds: float = 0.5) -> Callable[[int], bool]:
    """Ready once process ``pid`` has held ``path`` open for ``seconds``: a pass over the video, not a quick probe."""
    since: list[float] = []

    def ready(pid: int) -> bool:
        try:
            links = [os.readlink(entry.path) for entry in os.scandir(f"/proc/{pid}/fd")]
        except OSError:  # a descriptor closed while listed
            links = []
        if str(path) not in links:
            since.clear()
            return False
        since[:] = since or [time.monotonic()]
        return time.monotonic() - since[0] >= seconds

    return ready


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to see what the process has open")
def test_a_run_stopped_while_finding_the_best_frame_leaves_nothing(face, long_clip, model_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    args = ["run", face, long_clip, "-o", out / "out.mp4", "-c", model_file, "--find-best-frame",
            "--best-frame-by", "keypoints"]
    # during the first pass (finding the frame), before any output is opened
    result = stop_when(args, holding_open(long_clip), signal.SIGTERM, SETTLE)
    assert result.returncode == 143, result.stderr
    assert result.stderr.strip() == "terminated"
    assert os.listdir(out) == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_batch_keeps_finished_jobs_only(signum, face, talk, long_clip, model_file, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    manifest = tmp_path / "jobs.csv"
    manifest.write_text(f"source,driving,output\n{face},{talk},out/first.mp4\n{face},{long_clip},out/second.mp4\n"
                        f"{face},{talk},out/third.mp4\n")

    def second_job_writing(pid: int) -> bool:
        return any(name.startswith(".second.tmp-") for name in os.listdir(out))

    result = stop_when(["batch", manifest, "-c", model_file, "--json"], second_job_writing, signum, SETTLE)
    assert result.returncode in EXIT_CODES[signum], result.stderr
    assert [json.loads(line)["status"] for line in result.stdout.splitlines()] == ["ok"]
    assert os.listdir(out) == ["first.mp4"] and probe(out / "first.mp4").frame_count == 12
    lines = result.stderr.splitlines()
    assert lines[-2:] == ["3 jobs: 1 ok, 0 failed, 0 skipped, 2 not run", MESSAGES[signum]]


@pytest.mark.skipif("train" not in SUBCOMMANDS, reason="animate train is not there yet")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stopped_training_saves_its_checkpoint(signum, tmp_path):
    from animate_cli.checkpoint import load_checkpoint
    from tests.training.tiny import make_dataset, write_config

    make_dataset(tmp_path / "data", clips=2)
    run = tmp_path / "run"
    log = run / "log.jsonl"

    def stepped(pid: int) -> bool:
        return log.exists() and '"event": "step"' in log.read_text()

    # checkpoints only when stopped (or at step 100000): the one found afterwards was saved by the signal
    args = ["train", "--config", write_config(tmp_path), "--data", tmp_path / "data", "--out", run,
            "--max-steps", "100000", "--batch-size", "2", "--workers", "0", "--checkpoint-every", "100000",
            "--visualize-every", "100000", "--log-every", "1", "--reconstruction-loss", "l1"]
    result = stop_when(args, stepped, signum)
    assert result.returncode in EXIT_CODES[signum], result.stderr
    assert result.stderr.strip().splitlines()[-1] == MESSAGES[signum]
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines() if '"event": "step"' in line]
    model = load_checkpoint(run / "checkpoint.safetensors")
    assert model.provenance["steps"] >= steps[-1] >= 1
    assert leftovers(run) == []
