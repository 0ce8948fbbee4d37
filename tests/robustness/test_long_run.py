"""A long driving video (LONG_FRAMES, 3,000 frames) runs to its end: every input frame gives one output frame,
in order, on time. Its memory use (flat in the length of the video) is measured by the benchmarks, not here.
"""

from __future__ import annotations

import json

import pytest

from animate_cli.media.video import open_video
from tests.media.conftest import FPS
from tests.robustness.conftest import LONG_FRAMES, invoke, leftovers


def test_a_long_driving_video_runs_to_the_end(face, long_clip, model_file, tmp_path):
    out = tmp_path / "long.mp4"
    result = invoke("run", face, long_clip, "-o", out, "-c", model_file, "--json", "--batch-size", "16")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["frames"] == LONG_FRAMES
    with open_video(out) as reader:
        times = [frame.time for frame in reader]
    assert len(times) == LONG_FRAMES
    assert all(a < b for a, b in zip(times, times[1:]))
    assert times[-1] == pytest.approx((LONG_FRAMES - 1) / FPS, abs=1e-3)
    assert leftovers(tmp_path) == []
