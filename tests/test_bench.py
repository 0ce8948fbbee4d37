"""The benchmark compares like with like: its reference loop (the published demo's way) and `animate run`'s
pipeline make the same video from the same weights, and each measurement reports what the table prints."""

import numpy as np
import pytest

from bench.clips import make_driving_clip
from bench.worker import measure_pipeline, measure_reference, measure_stages

FRAMES = 6


@pytest.fixture
def tiny_model(tiny_checkpoint):
    from animate_cli.checkpoint import load_checkpoint

    return load_checkpoint(tiny_checkpoint)


def decoded(path):
    from animate_cli.media.video import open_video

    with open_video(path) as reader:
        return np.stack([frame.image for frame in reader]).astype(np.float64)


def test_reference_loop_and_pipeline_make_the_same_video(tmp_path, tiny_model):
    clip = make_driving_clip(tmp_path / "driving.mp4", FRAMES, tiny_model.image_size)
    reference_dir, pipeline_dir = tmp_path / "reference", tmp_path / "pipeline"
    reference_dir.mkdir()
    pipeline_dir.mkdir()
    reference = measure_reference(tiny_model, clip, reference_dir, "cpu")
    pipeline = measure_pipeline(tiny_model, clip, pipeline_dir, batch_size=4, precision="fp32", device="cpu")
    assert reference["frames"] == pipeline["frames"] == FRAMES
    for result in (reference, pipeline):
        assert all(result[key] > 0 for key in ("fps_end_to_end", "fps_end_to_end_warm", "fps_model"))
    reference_frames = decoded(reference_dir / "reference.mp4")
    pipeline_frames = decoded(pipeline_dir / "pipeline.mp4")
    assert reference_frames.shape == pipeline_frames.shape
    assert np.abs(reference_frames - pipeline_frames).mean() < 0.5  # the same frames, up to H.264 coding noise


def test_stages_decode_and_encode_every_frame(tmp_path, tiny_model):
    clip = make_driving_clip(tmp_path / "driving.mp4", FRAMES, tiny_model.image_size)
    stages = measure_stages(tiny_model, clip, tmp_path)
    assert stages["frames"] == FRAMES
    assert stages["fps_decode"] > 0 and stages["fps_encode"] > 0
    written = decoded(tmp_path / "stages.mp4")
    assert len(written) == FRAMES
