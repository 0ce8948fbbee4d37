"""``animate crop`` as a library: box geometry, the segment tracking (a pure function of per-frame boxes), and
clips cut around a moving subject found by a detector the tests control."""

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from animate_cli.cropping import (
    CropOptions,
    box_iou,
    box_union,
    crop_video,
    keypoint_box,
    letterbox_to_frame,
    segment_outputs,
    square_region,
    track_segments,
)
from animate_cli.errors import BadInputError
from animate_cli.media.resize import fit_image, resize_frame
from animate_cli.media.video import open_video, probe
from animate_cli.structures import Keypoints
from tests.media.conftest import add_audio_stream, write_audio

RED = np.array([230, 20, 20], np.uint8)


def test_iou_and_union():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0
    assert box_union((0, 5, 10, 10), (5, 0, 15, 8)) == (0, 0, 15, 10)


@pytest.mark.parametrize(
    "box, margin, expected",
    [
        ((40, 40, 60, 50), 0.0, (40, 35, 20)),  # centred square around the longer side
        ((40, 40, 60, 50), 0.5, (30, 25, 40)),  # widened by half the size on each side
        ((0, 0, 10, 10), 0.5, (0, 0, 20)),  # shifted into the frame, not shrunk
        ((95, 60, 100, 80), 0.0, (80, 60, 20)),
        ((-20, -20, 200, 200), 0.1, (10, 0, 80)),  # at most the shorter side
    ],
)
def test_square_region(box, margin, expected):
    assert square_region(box, margin, 100, 80) == expected


def test_square_region_holds_the_box_and_refuses_one_outside():
    rng = np.random.default_rng(0)
    for _ in range(200):
        x0, y0 = rng.uniform(0, 90), rng.uniform(0, 70)
        box = (x0, y0, x0 + rng.uniform(1, 100 - x0), y0 + rng.uniform(1, min(80 - y0, 80)))
        x, y, side = square_region(box, 0.1, 100, 80)
        assert 0 <= x and 0 <= y and x + side <= 100 and y + side <= 80
        if max(box[2] - box[0], box[3] - box[1]) * 1.2 <= 80:
            assert x <= box[0] and y <= box[1] and box[2] <= x + side and box[3] <= y + side
    with pytest.raises(BadInputError, match="outside the 100x80 image"):
        square_region((120, 10, 130, 20), 0.0, 100, 80)


def test_letterbox_coordinates_map_back_to_the_frame():
    frame = np.zeros((50, 90, 3), np.uint8)
    frame[19:22, 59:62] = 255  # a dot centred on pixel (60, 20)
    fitted = fit_image(frame, 64, "pad", pad_color=(0, 0, 0)).astype(float).sum(axis=2)
    rows, cols = np.mgrid[:64, :64]
    centroid = np.array([(fitted * cols).sum(), (fitted * rows).sum()]) / fitted.sum()
    assert letterbox_to_frame(centroid, 90, 50, 64) == pytest.approx([60, 20], abs=0.5)
    corners = letterbox_to_frame(np.array([[0, 14], [63, 49]]), 90, 50, 64)
    assert np.allclose(corners, [[0, 0], [89, 49]], atol=0.8)


def test_keypoint_box_covers_the_keypoints_and_their_spread():
    value = torch.tensor([[[-0.5, 0.0], [0.5, 0.2]]])
    covariance = torch.zeros(1, 2, 2, 2)
    covariance[0, 0] = torch.eye(2) * (2 / 31.5) ** 2  # a 2-pixel deviation on the 64 x 64 model frame
    box = keypoint_box(Keypoints(value, None, covariance), 64, 64, 64)
    # keypoint 0 at pixel (15.75, 31.5) widened by 2 deviations (4 px); keypoint 1 at (47.25, 37.8), no spread
    assert box == pytest.approx((15.75 - 4 + 0.5, 31.5 - 4 + 0.5, 47.25 + 0.5, 37.8 + 0.5))


def moving(start, step, count):
    """One 20 x 10 box per frame, moving right by ``step`` pixels a frame."""
    return [[(start + step * i, 20, start + step * i + 20, 30)] for i in range(count)]


def test_a_slowly_moving_subject_is_one_segment_whose_region_is_the_union():
    segments = track_segments(moving(0, 1, 12), iou_threshold=0.25, min_frames=1)
    assert [(s.start, s.end) for s in segments] == [(0, 12)]
    assert segments[0].initial == (0, 20, 20, 30) and segments[0].union == (0, 20, 31, 30)


def test_a_jump_starts_a_new_segment_and_short_ones_are_dropped():
    boxes = moving(0, 1, 6) + moving(60, 1, 6) + [[]] * 2 + moving(0, 0, 3)
    segments = track_segments(boxes, iou_threshold=0.25, min_frames=1)
    assert [(s.start, s.end) for s in segments] == [(0, 6), (6, 12), (14, 17)]
    assert [(s.start, s.end) for s in track_segments(boxes, 0.25, min_frames=4)] == [(0, 6), (6, 12)]
    # the IoU is measured against the segment's first box, so slow drift ends a segment too
    drift = track_segments(moving(0, 3, 12), iou_threshold=0.25, min_frames=1)
    assert [(s.start, s.end) for s in drift] == [(0, 4), (4, 8), (8, 12)]


def test_two_subjects_at_once_make_two_segments():
    boxes = [[(0, 0, 10, 10), (50, 50, 70, 70)] for _ in range(5)] + [[(1, 0, 11, 10)] for _ in range(3)]
    segments = track_segments(boxes, iou_threshold=0.25, min_frames=1)
    assert sorted((s.start, s.end, s.initial) for s in segments) == [(0, 5, (50, 50, 70, 70)), (0, 8, (0, 0, 10, 10))]
    assert segments[1].union == (0, 0, 11, 10)


def test_segment_outputs():
    assert segment_outputs("out/face.mp4", 1) == ["out/face.mp4"]
    assert segment_outputs("out/face.mp4", 2) == ["out/face_001.mp4", "out/face_002.mp4"]
    assert segment_outputs("frames/", 2) == ["frames_001/", "frames_002/"]
    assert segment_outputs("f%04d.png", 2) == ["f%04d_001.png", "f%04d_002.png"]


# ------------------------------------------------------------------------------------------------ clips
def square_positions():
    """The red square's top-left per frame: drifting right, then jumping to the other side at frame 6."""
    return [(4 + i, 10) for i in range(6)] + [(60 + i, 30) for i in range(6)]


def square_frame(x, y, width=96, height=64):
    rng = np.random.default_rng(x * 100 + y)
    frame = rng.integers(0, 90, (height, width, 3), dtype=np.uint8)  # dark, noisy background
    frame[y:y + 12, x:x + 12] = RED
    return frame


def red_boxes(frames):
    """The controllable detector: the extent of the red pixels."""
    boxes = []
    for frame in frames:
        ys, xs = np.nonzero((frame[..., 0] > 180) & (frame[..., 1] < 80))
        boxes.append([(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)] if len(xs) else [])
    return boxes


@pytest.fixture(scope="module")
def square_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("square") / "frames"
    folder.mkdir()
    for index, (x, y) in enumerate(square_positions()):
        Image.fromarray(square_frame(x, y)).save(folder / f"{index:03d}.png")
    return folder


def test_the_subject_stays_inside_every_cropped_frame(tmp_path, square_folder):
    options = CropOptions(margin=0.1, min_frames=2, size=32)
    result = crop_video(square_folder, f"{tmp_path / 'clip'}/", red_boxes, options)
    assert [(r.start, r.end) for r in result.regions] == [(0, 6), (6, 12)]
    assert result.outputs == [f"{tmp_path / 'clip_001'}/", f"{tmp_path / 'clip_002'}/"]
    positions = square_positions()
    for region, output in zip(result.regions, result.outputs):
        written = sorted(Path(output).glob("*.png"))
        assert len(written) == region.end - region.start
        for index, path in zip(range(region.start, region.end), written):
            x, y = positions[index]
            # the whole square lies inside the region...
            assert region.x <= x and x + 12 <= region.x + region.side
            assert region.y <= y and y + 12 <= region.y + region.side
            # ...and the clip's frame is that region resampled
            frame = square_frame(x, y)[region.y:region.y + region.side, region.x:region.x + region.side]
            assert np.array_equal(np.asarray(Image.open(path)), resize_frame(frame, (32, 32)))
    assert result.regions[1].to_json() == {
        "start": 6, "end": 12, "start_time": 0.24, "end_time": 0.48,
        "box": [result.regions[1].x, result.regions[1].y, result.regions[1].side, result.regions[1].side],
    }


def test_without_an_output_only_the_regions_are_found(tmp_path, square_folder):
    result = crop_video(square_folder, None, red_boxes, CropOptions(min_frames=2))
    assert len(result.regions) == 2 and result.outputs == [] and list(tmp_path.iterdir()) == []
    with pytest.raises(BadInputError, match="no subject found for at least 7 frames"):
        crop_video(square_folder, None, red_boxes, CropOptions(min_frames=7))


def square_clip_with_late_sound(path: Path) -> Path:
    """The square clip as H.264 at 25 fps with silence, then a tone from 0.24 s (frame 6: the second segment)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 25)
        audio = add_audio_stream(container, "aac", 44100)
        for index, (x, y) in enumerate(square_positions()):
            frame = av.VideoFrame.from_ndarray(square_frame(x, y), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
        write_audio(container, audio, 0.5, start=0.24)
    return path


def decoded_audio(path):
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(stream)])
        return samples, stream.rate


def test_a_later_segment_keeps_its_sound_in_sync(tmp_path):
    driving = square_clip_with_late_sound(tmp_path / "square.mp4")
    result = crop_video(driving, str(tmp_path / "clip.mp4"), red_boxes, CropOptions(min_frames=2, size=32))
    second = Path(result.outputs[1])
    info = probe(second)
    assert info.frame_count == 6 and info.has_audio and info.duration == pytest.approx(0.24, abs=0.01)
    samples, rate = decoded_audio(second)
    assert len(samples) / rate == pytest.approx(0.24, abs=0.03)
    # the tone starts with the segment: the opening of the clip already carries it (0.3 amplitude sine)
    opening = samples[round(0.03 * rate):round(0.2 * rate)]
    assert np.sqrt(np.mean(opening**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.15)
    with open_video(second) as reader:
        assert [round(frame.time, 3) for frame in reader] == [0, 0.04, 0.08, 0.12, 0.16, 0.2]
