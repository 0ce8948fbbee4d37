"""``animate crop`` as a library call: find the subject through a driving video and cut square clips around it.

Two streaming passes over the video. The first finds the subject's box in every frame (face boxes from
face-alignment, or the extent of the model's keypoints) and groups the frames into stable segments, as the
published ``crop-video.py`` does (FACTS §8): a segment lives while some box of the current frame overlaps the
segment's *initial* box by more than ``iou_threshold``; its region is the union of its boxes, widened by
``margin`` per side and made square. One fixed region per segment keeps the camera still in the clip (a moving
crop would read as motion to the model) while containing the subject in every frame. The second pass cuts each
segment's region out of its frames, resamples it to ``size`` x ``size`` and writes it with the matching sound.

The tracking is a pure function of per-frame boxes (:func:`track_segments`), so it is tested with given boxes.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from animate_cli.errors import BadInputError

if TYPE_CHECKING:
    import torch

    from animate_cli.checkpoint import AnimationModel
    from animate_cli.landmarks import FaceAnalyzer
    from animate_cli.structures import Keypoints

#: (x0, y0, x1, y1) in pixels: pixel (i, j) covers [j, j+1) x [i, i+1).
Box = tuple[float, float, float, float]
#: Finds the subject boxes in each of a batch of full (H, W, 3) uint8 frames.
BoxFinder = Callable[[list[np.ndarray]], list[list[Box]]]
DETECTORS = ("faces", "keypoints")
#: A keypoint's extent: this many standard deviations of its heatmap around it (covers ~95% of its mass).
KEYPOINT_SPREAD = 2.0


# ------------------------------------------------------------------------------------------------ geometry
def box_iou(first: Box, second: Box) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    width = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3], second[3]) - max(first[1], second[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1]) - inter
    return inter / union if union > 0 else 0.0


def box_union(first: Box, second: Box) -> Box:
    """The smallest box holding both."""
    return min(first[0], second[0]), min(first[1], second[1]), max(first[2], second[2]), max(first[3], second[3])


def square_region(box: Box, margin: float, width: int, height: int) -> tuple[int, int, int]:
    """(x, y, side) of a square inside a width x height frame around ``box`` widened by ``margin`` per side.

    The square is centred on the box (rounded out to whole pixels) and shifted, not shrunk, to fit the frame,
    so it holds the whole box whenever the frame is large enough; it is at most the frame's shorter side.
    """
    # the whole pixels the box touches, inside the frame: an integer box fits in an integer square
    x0, y0 = max(math.floor(box[0]), 0), max(math.floor(box[1]), 0)
    x1, y1 = min(math.ceil(box[2]), width), min(math.ceil(box[3]), height)
    if x1 <= x0 or y1 <= y0:
        raise BadInputError(f"box {box[0]:g},{box[1]:g},{box[2] - box[0]:g},{box[3] - box[1]:g} is outside the "
                            f"{width}x{height} image")
    side = min(math.ceil(max(x1 - x0, y1 - y0) * (1 + 2 * margin) - 1e-9), width, height)
    left = min(max((x0 + x1 - side) // 2, 0), width - side)
    top = min(max((y0 + y1 - side) // 2, 0), height - side)
    return left, top, side


def letterbox_to_frame(points: np.ndarray, width: int, height: int, size: int) -> np.ndarray:
    """Pixel (x, y) in a frame letterboxed to size x size (``fit_image(..., 'pad')``) -> pixel in the frame.

    Mirrors the letterbox geometry of :mod:`animate_cli.media.resize`: scale by size / longer side, centre on
    the bars; pixel centres map onto pixel centres.
    """
    scale = size / max(width, height)
    inner_width = max(1, min(size, round(width * scale)))
    inner_height = max(1, min(size, round(height * scale)))
    left, top = (size - inner_width) // 2, (size - inner_height) // 2
    points = np.asarray(points, dtype=np.float64)
    x = (points[..., 0] - left + 0.5) * width / inner_width - 0.5
    y = (points[..., 1] - top + 0.5) * height / inner_height - 0.5
    return np.stack([x, y], axis=-1)


def keypoint_box(kp: Keypoints, width: int, height: int, size: int) -> Box:
    """The extent of one frame's keypoints (batch of one, with covariance), detected on the frame letterboxed
    to size x size, in the frame's pixels: each keypoint widened by ``KEYPOINT_SPREAD`` heatmap deviations."""
    from animate_cli.inspection import pixel_scale
    from animate_cli.visualize import normalized_to_pixels

    points = normalized_to_pixels(kp.value[0].numpy(), size, size)
    spread = KEYPOINT_SPREAD * np.sqrt(np.clip(np.diagonal(kp.covariance[0].numpy(), axis1=1, axis2=2), 0, None))
    spread = spread * pixel_scale(size)
    low = letterbox_to_frame(points - spread, width, height, size) + 0.5  # pixel centres -> box edges
    high = letterbox_to_frame(points + spread, width, height, size) + 0.5
    return float(low[:, 0].min()), float(low[:, 1].min()), float(high[:, 0].max()), float(high[:, 1].max())


def keypoint_box_finder(model: AnimationModel, device: torch.device) -> BoxFinder:
    """Subject boxes from the model's keypoints on each whole frame (letterboxed, so nothing is cut off)."""
    from animate_cli.inspection import detect_keypoints
    from animate_cli.media.resize import fit_image

    size = model.image_size

    def find(frames: list[np.ndarray]) -> list[list[Box]]:
        height, width = frames[0].shape[:2]
        kp = detect_keypoints(model, [fit_image(frame, size, "pad") for frame in frames], device)
        return [[keypoint_box(kp[index], width, height, size)] for index in range(len(frames))]

    return find


def face_box_finder(faces: FaceAnalyzer) -> BoxFinder:
    """Subject boxes from face-alignment's face detector (several faces: several boxes)."""
    return lambda frames: [faces.face_boxes(frame) for frame in frames]


def subject_box_finder(detector: str, model: AnimationModel | None, device: torch.device,
                       landmarks_weights: Path | None, feature: str) -> BoxFinder:
    """The box finder for ``detector`` ('faces' or 'keypoints'); ``feature`` names the option in errors."""
    if detector == "faces":
        from animate_cli.landmarks import FaceAnalyzer

        return face_box_finder(FaceAnalyzer(str(device), landmarks_weights, feature))
    assert model is not None, "the keypoint detector needs the model"
    return keypoint_box_finder(model, device)


def resolve_detector(detector: str | None) -> str:
    """'faces' or 'keypoints'; None or 'auto' takes faces when face-alignment is installed."""
    from animate_cli.landmarks import face_alignment_available

    if detector in (None, "auto"):
        return "faces" if face_alignment_available() else "keypoints"
    if detector not in DETECTORS:
        raise BadInputError(f"unknown detector '{detector}' (use {', '.join(DETECTORS)} or auto)")
    return detector


# ------------------------------------------------------------------------------------------------ tracking
@dataclass
class Segment:
    """Frames ``start`` to ``end`` (exclusive) following one subject; ``initial`` is its first box."""

    start: int
    end: int
    initial: Box
    union: Box

    @property
    def frames(self) -> int:
        return self.end - self.start


def track_segments(frame_boxes: Iterable[Sequence[Box]], iou_threshold: float, min_frames: int) -> list[Segment]:
    """Group per-frame subject boxes into segments (the published crop-video.py's rule), ordered by start.

    A segment stays alive while some box of the current frame has IoU > ``iou_threshold`` with its initial box;
    each box joins the live segment it overlaps most (above the threshold) or starts a new one. Segments
    shorter than ``min_frames`` frames are dropped.
    """
    alive: list[Segment] = []
    finished: list[Segment] = []
    for index, boxes in enumerate(frame_boxes):
        still = []
        for segment in alive:
            if any(box_iou(segment.initial, box) > iou_threshold for box in boxes):
                still.append(segment)
            elif segment.frames >= min_frames:
                finished.append(segment)
        alive = still
        for box in boxes:
            best, best_iou = None, iou_threshold
            for segment in alive:
                overlap = box_iou(segment.initial, box)
                if overlap > best_iou:
                    best, best_iou = segment, overlap
            if best is None:
                alive.append(Segment(index, index + 1, box, box))
            else:
                best.end = index + 1
                best.union = box_union(best.union, box)
    finished.extend(segment for segment in alive if segment.frames >= min_frames)
    return sorted(finished, key=lambda segment: (segment.start, segment.end))


@dataclass(frozen=True)
class CropRegion:
    """A clip to cut: frames ``start`` to ``end`` (exclusive), their times in seconds, and the square
    (x, y, side) in the driving frames."""

    start: int
    end: int
    start_time: float
    end_time: float
    x: int
    y: int
    side: int

    def to_json(self) -> dict:
        return {
            "start": self.start, "end": self.end, "start_time": round(self.start_time, 6),
            "end_time": round(self.end_time, 6), "box": [self.x, self.y, self.side, self.side],
        }


def segment_outputs(output: str, count: int) -> list[str]:
    """Where each segment's clip goes: ``output`` itself for one, else ``<stem>_001<suffix>``, ``_002``, ..."""
    if count == 1:
        return [output]
    if output.endswith(("/", os.sep)) or Path(output).is_dir():
        folder = Path(output.rstrip("/" + os.sep))
        return [f"{folder.parent / f'{folder.name}_{i:03d}'}/" for i in range(1, count + 1)]
    path = Path(output)
    return [str(path.with_name(f"{path.stem}_{i:03d}{path.suffix}")) for i in range(1, count + 1)]


# ------------------------------------------------------------------------------------------------ passes
@dataclass(frozen=True)
class CropOptions:
    margin: float = 0.1
    iou_threshold: float = 0.25
    min_frames: int = 10
    size: int = 256
    batch_size: int = 8
    audio: bool = True
    overwrite: bool = False


def find_regions(
    driving: Path,
    find_boxes: BoxFinder,
    options: CropOptions,
    progress: Callable[[int, int | None], None] | None = None,
) -> list[CropRegion]:
    """First pass: the subject's square region for each stable segment of ``driving``."""
    from animate_cli.media.video import open_video
    from animate_cli.pipeline import batched, prefetch

    times: list[float] = []
    with open_video(driving) as reader:
        info = reader.info

        def boxes() -> Iterable[list[Box]]:
            for batch in batched(prefetch(iter(reader)), options.batch_size):
                for frame, found in zip(batch, find_boxes([frame.image for frame in batch])):
                    times.append(frame.time)
                    yield found
                if progress is not None:
                    progress(len(times), info.frame_count)

        segments = track_segments(boxes(), options.iou_threshold, options.min_frames)
    ends = [*times[1:], times[-1] + 1 / info.fps]  # a segment ends where its next frame would start
    regions = []
    for segment in segments:
        x, y, side = square_region(segment.union, options.margin, info.width, info.height)
        regions.append(CropRegion(segment.start, segment.end, times[segment.start], ends[segment.end - 1], x, y, side))
    return regions


def cut_audio(source: Path, start: float, end: float, target: Path) -> Path | None:
    """The sound of ``source`` from ``start`` to ``end`` seconds (its video timeline) as a Matroska file whose
    time 0 is ``start``; None when ``source`` has no sound.

    Packets are copied, not re-encoded. A 2x2 video frame at time 0 anchors the file's timeline, because the
    writer lines sound up with its source's first video frame: the first copied packet (the first starting
    at or after ``start``) then keeps its true offset, so the sound stays in sync to the millisecond.
    """
    import av

    if source.is_dir():
        return None
    with av.open(str(source), metadata_errors="replace") as container:  # tags need not be UTF-8
        if not container.streams.audio:
            return None
        audio = container.streams.audio[0]
        video = container.streams.video[0]
        origin = video.start_time * video.time_base if video.start_time is not None else Fraction(0)
        first = round((origin + Fraction(start)) / audio.time_base)
        last = round((origin + Fraction(end)) / audio.time_base)
        with av.open(str(target), "w", format="matroska") as output:
            anchor = output.add_stream("ffv1", rate=1)
            anchor.width = anchor.height = 2
            anchor.pix_fmt = "yuv420p"
            copy = output.add_stream_from_template(audio)
            frame = av.VideoFrame.from_ndarray(np.zeros((2, 2, 3), np.uint8), format="rgb24").reformat(format="yuv420p")
            frame.pts = 0
            for packet in [*anchor.encode(frame), *anchor.encode(None)]:
                output.mux(packet)
            for packet in container.demux(audio):
                if packet.size == 0 or packet.pts is None or packet.pts < first:
                    continue
                if packet.pts >= last:
                    break
                packet.pts -= first
                if packet.dts is not None:
                    packet.dts -= first
                packet.stream = copy
                output.mux(packet)
    return target


@dataclass(frozen=True)
class CropResult:
    outputs: list[str]
    regions: list[CropRegion]
    seconds: float

    def to_json(self) -> dict:
        return {"outputs": self.outputs, "regions": [r.to_json() for r in self.regions],
                "seconds": round(self.seconds, 3)}


def write_regions(
    driving: Path,
    regions: list[CropRegion],
    outputs: list[str],
    options: CropOptions,
    progress: Callable[[int, int | None], None] | None = None,
) -> None:
    """Second pass: cut each region's frames, resample them to size x size and write them with their sound."""
    from animate_cli.media.resize import resize_frame
    from animate_cli.media.video import open_video
    from animate_cli.media.writer import VideoWriter
    from animate_cli.pipeline import prefetch

    writers: dict[int, VideoWriter] = {}
    with tempfile.TemporaryDirectory(prefix="animate-crop-") as scratch, open_video(driving) as reader:
        fps = reader.info.fps
        try:
            for frame in prefetch(iter(reader)):
                for slot, region in enumerate(regions):
                    if frame.index == region.start:
                        sound: Path | None = None
                        if options.audio:
                            sound = driving if region.start == 0 else cut_audio(
                                driving, region.start_time, region.end_time, Path(scratch) / f"{slot}.mka")
                        writers[slot] = VideoWriter(outputs[slot], fps=fps, audio_source=sound,
                                                    overwrite=options.overwrite)
                    if slot in writers:
                        crop = frame.image[region.y:region.y + region.side, region.x:region.x + region.side]
                        writers[slot].write(resize_frame(crop, (options.size, options.size)),
                                            time=frame.time - region.start_time)
                    if frame.index == region.end - 1 and slot in writers:
                        writers.pop(slot).close()
                if progress is not None:
                    progress(frame.index + 1, reader.info.frame_count)
            for slot in list(writers):  # a clip that runs to the last frame decoded
                writers.pop(slot).close()
        except BaseException:
            for writer in writers.values():
                writer.abort()
            raise


def crop_video(
    driving: Path,
    output: str | None,
    find_boxes: BoxFinder,
    options: CropOptions,
    progress: Callable[[int, int | None], None] | None = None,
) -> CropResult:
    """Find the regions of ``driving``; with an ``output``, write one clip per region."""
    from animate_cli.media.writer import check_output

    started = time.perf_counter()
    regions = find_regions(driving, find_boxes, options, progress)
    if not regions:
        raise BadInputError(
            f"{driving}: no subject found for at least {options.min_frames} frames in a row (see --min-frames)")
    outputs = [] if output is None else segment_outputs(output, len(regions))
    for path in outputs:
        check_output(path, overwrite=options.overwrite)
    if outputs:
        write_regions(driving, regions, outputs, options, progress)
    return CropResult(outputs, regions, time.perf_counter() - started)

