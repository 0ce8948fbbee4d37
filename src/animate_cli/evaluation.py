"""Evaluate a model on clips in the FOMM layout (``DIR/train/``, ``DIR/test/``).

* Reconstruction, as in the paper (FACTS §10): each clip animates its own frame 0 with every one of its frames
  (frame 0 included), keypoints absolute; L1 = mean |prediction - frame| on [0, 1] over pixels and channels,
  averaged over all frames of all clips.
* With ground truth (a ``.npz`` beside each clip, as ``animate data synth`` writes), beyond the paper: a keypoint
  error in pixels (an AKD analogue through a fitted affine map), the dense flow's end-point error on the subject,
  the error of the keypoints' local linear motion (the first order's jacobians, the zeroth order's identity)
  against the true motion of the part under each keypoint, and cross-identity animation L1 against rendered
  targets (``<split>/pairs.csv``) next to two trivial baselines.

The metric functions at the top are pure; :func:`evaluate` streams one clip at a time through the model and them.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from animate_cli.checkpoint import AnimationModel
from animate_cli.data.puppets import flow_visibility, ground_truth_flow, part_motion_maps
from animate_cli.errors import BadInputError
from animate_cli.media.images import is_image_path, read_image, write_image
from animate_cli.media.resize import fit_image
from animate_cli.media.video import open_video
from animate_cli.motion import resize_flow
from animate_cli.pipeline import Animator, MotionOptions, PreparedSource, batched, tensor_to_images
from animate_cli.structures import GeneratorOutput, Keypoints
from animate_cli.training.dataset import list_clips

Progress = Callable[[int, int | None], None]
PAIRS_FILE = "pairs.csv"
PAIR_COLUMNS = ("source", "driving", "target")
# rows of each kind (reconstruction clips, animation pairs) in examples.png
DEFAULT_EXAMPLES = 4
REPORT_FILE = "report.md"
EXAMPLES_FILE = "examples.png"


# ------------------------------------------------------------------------------------------------ metrics
def to_unit(frames: np.ndarray) -> np.ndarray:
    """uint8 frames of any shape -> float32 on [0, 1]."""
    return frames.astype(np.float32) / 255


def l1_on_mask(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """The part of :func:`l1` of two (H, W, 3) frames that comes from the pixels where ``mask`` (H, W) is true:
    the sum of their errors over every element, so that the parts for ``mask`` and ``~mask`` add up to the L1."""
    if prediction.shape != target.shape or prediction.shape[:2] != mask.shape:
        raise ValueError(f"shapes differ: {prediction.shape}, {target.shape} and mask {mask.shape}")
    return float(np.abs(prediction[mask] - target[mask]).sum(dtype=np.float64) / prediction.size)


def l1(prediction: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute difference over every element of two equally shaped float arrays on [0, 1].

    On frames (..., H, W, 3) this is the paper's reconstruction L1: the mean over pixels and channels.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"shapes differ: {prediction.shape} and {target.shape}")
    return float(np.abs(prediction - target).mean(dtype=np.float64))


def normalized_to_pixels(coords: torch.Tensor, height: int, width: int, align_corners: bool) -> torch.Tensor:
    """(..., 2) points (x, y) on [-1, 1] of an (height, width) grid -> pixels, pixel centres at integers.

    align_corners=True reads ±1 as the centres of the corner pixels: x_px = (x + 1) / 2 · (W - 1);
    False reads them as the outer edges of the corner pixels: x_px = ((x + 1) · W - 1) / 2 (``grid_sample``'s rules).
    """
    size = coords.new_tensor([width, height])
    if align_corners:
        return (coords + 1) / 2 * (size - 1)
    return ((coords + 1) * size - 1) / 2


def flow_from_deformation(deformation: torch.Tensor, size: tuple[int, int], align_corners: bool) -> torch.Tensor:
    """Backward flow in image pixels from a deformation: flow(p) = the source point p samples - p.

    deformation: (B, h, w, 2), (x, y) on [-1, 1], read on its own (h, w) grid in the model's grid-sampling
    convention, as the generator reads it when it warps its (h, w) features. size: the image's (H, W).
    Returns (B, H, W, 2) float32 (dx, dy) in pixels, so that driving(p) ≈ source(p + flow(p)): the convention of
    :func:`animate_cli.data.puppets.ground_truth_flow`.

    Cell k of the (h, w) grid stands for image pixel (k + 0.5)·H/h - 0.5 (where the encoder's average pooling puts
    feature k), the same correspondence as ``resize_flow``'s half-pixel-centred bilinear upsampling; so a
    deformation that is the identity on its own grid is zero flow in the image, except in the outermost H/(2h)
    pixels, where the upsampling clamps. (Reading the upsampled values in the image's convention instead would
    turn the low-resolution identity into a spurious zoom of up to ±1.5 pixels.)
    """
    height, width = size
    grid_height, grid_width = deformation.shape[1:3]
    cells = normalized_to_pixels(deformation.float(), grid_height, grid_width, align_corners)
    stride = cells.new_tensor([width / grid_width, height / grid_height])
    sampled = resize_flow((cells + 0.5) * stride - 0.5, height, width)
    rows = torch.arange(height, dtype=sampled.dtype, device=sampled.device)
    columns = torch.arange(width, dtype=sampled.dtype, device=sampled.device)
    ys, xs = torch.meshgrid(rows, columns, indexing="ij")
    return sampled - torch.stack([xs, ys], dim=-1)


def end_point_error(prediction: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> float:
    """Mean Euclidean distance |prediction - truth| over the ``valid`` pixels; NaN when none is valid.

    prediction, truth: (H, W, 2) flows in pixels; valid: (H, W) bool.
    """
    if not valid.any():
        return float("nan")
    difference = prediction[valid].astype(np.float64) - truth[valid]
    return float(np.linalg.norm(difference, axis=-1).mean())


def fit_linear_map(features: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Least-squares affine map from features (N, D) to targets (N, E): weights (D + 1, E), the bias last.

    Underdetermined systems (N < D + 1) get the minimum-norm solution.
    """
    design = np.hstack([features.astype(np.float64), np.ones((len(features), 1))])
    weights, *_ = np.linalg.lstsq(design, targets.astype(np.float64), rcond=None)
    return weights


def apply_linear_map(weights: np.ndarray, features: np.ndarray) -> np.ndarray:
    """features (N, D) -> (N, E) through the weights (D + 1, E) of :func:`fit_linear_map`."""
    return features.astype(np.float64) @ weights[:-1] + weights[-1]


def keypoint_error(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean Euclidean distance per point, in the points' unit: predicted and truth (N, J, 2)."""
    if predicted.shape != truth.shape:
        raise ValueError(f"shapes differ: {predicted.shape} and {truth.shape}")
    return float(np.linalg.norm(predicted.astype(np.float64) - truth, axis=-1).mean())


def true_local_motion(
    affines_source: np.ndarray, affines_driving: np.ndarray, labels_driving: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The linear part of the exact backward motion (driving frame -> source frame) at each driving point.

    affines_source, affines_driving: (P, 2, 3) part-local -> pixel in each frame; labels_driving: (H, W) part
    labels of the driving frame (part + 1, 0 the background); points: (N, 2) pixel (x, y) in the driving frame.
    Returns the (N, 2, 2) maps, which are what J_src J_drv⁻¹ of seed eq. 4.1 models at a keypoint on that part,
    and on_subject: (N,) bool, the points whose nearest pixel shows a part (the others get the identity).
    """
    height, width = labels_driving.shape
    columns, rows = np.rint(points[:, 0]).astype(np.int64), np.rint(points[:, 1]).astype(np.int64)
    inside = (columns >= 0) & (columns < width) & (rows >= 0) & (rows < height)
    labels = np.where(inside, labels_driving[rows.clip(0, height - 1), columns.clip(0, width - 1)], 0)
    maps = part_motion_maps(affines_source, affines_driving)[labels]
    return maps[:, :, :2], labels > 0


def matrix_errors(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Frobenius norms |predicted - truth| of (N, 2, 2) matrices: (N,)."""
    return np.linalg.norm((predicted.astype(np.float64) - truth).reshape(len(truth), -1), axis=-1)


@dataclass
class RunningMean:
    """A weighted mean built one value at a time (each value may itself be a mean over ``weight`` items)."""

    total: float = 0.0
    weight: float = 0.0

    def add(self, value: float, weight: float = 1.0) -> None:
        self.total += value * weight
        self.weight += weight

    @property
    def mean(self) -> float:
        return self.total / self.weight if self.weight else float("nan")


# ------------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class ReconstructionScore:
    """The paper's reconstruction L1 over ``frames`` frames of ``videos`` clips."""

    l1: float
    frames: int
    videos: int


@dataclass(frozen=True)
class KeypointScore:
    """Mean joint error in pixels after the affine map fitted on ``fit_frames`` frames, over ``frames`` frames."""

    error_px: float
    fit_frames: int
    frames: int


@dataclass(frozen=True)
class FlowScore:
    """Mean end-point error in pixels over ``pixels`` visible subject pixels."""

    epe: float
    pixels: int


@dataclass(frozen=True)
class LocalMotionScore:
    """Each keypoint's local linear motion against the true motion of the part under it (seed eq. 4.1).

    ``error``: mean Frobenius |J_src J_drv⁻¹ - A| over ``samples`` (frame, keypoint) pairs whose driving
    keypoint lies on the subject, A the linear part of that part's exact driving -> source map; a zeroth-order
    model's local motion is the identity. ``identity_error``: the identity's error on the same samples, so a
    first-order model's jacobians help where ``error`` is below it. ``on_subject``: the fraction of keypoints that
    lie on the subject at all (the others track the background or nothing).
    """

    error: float
    identity_error: float
    on_subject: float
    samples: int


@dataclass(frozen=True)
class AnimationScore:
    """Cross-identity animation L1 over ``frames`` frames of ``pairs`` pairs, and its two baselines.

    With the targets' part labels, ``l1`` is also split by where its error lies: ``subject_l1`` (pixels of the
    target's subject) plus ``background_l1`` (the rest) equals ``l1``; ``still_source_subject_l1`` is the still
    source's part on the subject. The split tells a model that moves parts badly from one that renders blurrily.
    """

    l1: float
    still_source_l1: float
    driving_frame_l1: float
    pairs: int
    frames: int
    subject_l1: float | None = None
    background_l1: float | None = None
    still_source_subject_l1: float | None = None


@dataclass
class EvaluationResult:
    """Everything one evaluation found.

    examples: (rows·S, 4·S, 3) uint8, columns source | driving | prediction | target, or None.
    """

    checkpoint: str | None
    data: str
    split: str
    reconstruction: ReconstructionScore
    keypoints: KeypointScore | None = None
    flow: FlowScore | None = None
    local_motion: LocalMotionScore | None = None
    animation: AnimationScore | None = None
    notes: list[str] = field(default_factory=list)
    examples: np.ndarray | None = field(default=None, repr=False)
    example_rows: tuple[int, int] = (0, 0)  # (reconstruction rows, animation rows) in ``examples``

    def to_json(self) -> dict[str, Any]:
        """One JSON-ready dict; the ground-truth sections only when they were measured."""
        found: dict[str, Any] = {
            "checkpoint": self.checkpoint,
            "data": self.data,
            "split": self.split,
            "reconstruction": asdict(self.reconstruction),
        }
        for name in ("keypoints", "flow", "local_motion", "animation"):
            score = getattr(self, name)
            if score is not None:
                found[name] = asdict(score)
        found["notes"] = list(self.notes)
        return found


# ------------------------------------------------------------------------------------------------ data
@dataclass(frozen=True)
class Pair:
    """A cross-identity example: animate frame 0 of ``source`` with ``driving``; ``target`` is the truth."""

    source: Path
    driving: Path
    target: Path


@dataclass(frozen=True)
class EvaluationPlan:
    """What to read: the evaluated clips, the clips the keypoint map is fitted on, and the pairs."""

    data_dir: Path
    split: str
    clips: list[Path]
    fit_clips: list[Path]
    pairs: list[Pair]


def plan_evaluation(data_dir: str | Path, split: str = "test", max_videos: int | None = None) -> EvaluationPlan:
    """List the clips of ``data_dir/split`` (at most ``max_videos``, likewise for train/ and the pairs).

    Raises BadInputError for a missing folder, an empty split, or a malformed pairs file, before any model work.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise BadInputError(f"{data_dir}: no such folder")
    folder = data_dir / split
    if not folder.is_dir():
        raise BadInputError(
            f"{data_dir}: no '{split}' folder (expected the FOMM layout {data_dir}/train/, {data_dir}/test/)"
        )
    clips = list_clips(folder)[:max_videos]
    if not clips:
        raise BadInputError(f"{folder}: no clips (frame folders or video files)")
    train = data_dir / "train"
    fit_clips = [clip for clip in list_clips(train) if truth_path(clip).is_file()] if train.is_dir() else []
    pairs = read_pairs(data_dir, folder / PAIRS_FILE)
    return EvaluationPlan(data_dir, split, clips, fit_clips[:max_videos], pairs[:max_videos])


def read_pairs(data_dir: Path, path: Path) -> list[Pair]:
    """The rows of a ``source,driving,target`` CSV (paths relative to ``data_dir``); none when the file is absent."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in PAIR_COLUMNS if name not in (reader.fieldnames or [])]
        if missing:
            raise BadInputError(f"{path}: needs the columns {','.join(PAIR_COLUMNS)} (missing {', '.join(missing)})")
        pairs = [Pair(*(data_dir / row[name] for name in PAIR_COLUMNS)) for row in reader]
    for pair in pairs:
        for clip in (pair.source, pair.driving, pair.target):
            if not clip.exists():
                raise BadInputError(f"{path}: names {clip}, which does not exist")
    return pairs


def truth_path(clip: Path) -> Path:
    """Where a clip's ground truth lies: ``clip_00000.npz`` beside ``clip_00000/`` or ``clip_00000.mp4``."""
    return clip.parent / f"{clip.name if clip.is_dir() else clip.stem}.npz"


def load_truth(path: Path) -> dict[str, np.ndarray] | None:
    """A clip's ground truth, decompressed once; None when it has none."""
    if not path.is_file():
        return None
    with np.load(path) as archive:
        if not {"affines", "labels", "joints", "size"} <= set(archive.files):
            raise BadInputError(f"{path}: not a ground-truth file of 'animate data synth' (no affines, labels, joints)")
        return {name: archive[name] for name in archive.files}


def read_frames(clip: Path, size: int) -> Iterator[np.ndarray]:
    """A clip's frames as (size, size, 3) uint8, one at a time, centre-cropped and resized when they differ.

    A clip is a frame folder, a video file, or one image of square frames side by side (the published mgif/bair).
    """
    if clip.is_file() and is_image_path(clip):
        strip = read_image(clip)
        side = strip.shape[0]
        if strip.shape[1] < side:
            raise BadInputError(f"{clip}: an image clip holds square frames side by side; it is narrower than high")
        for index in range(strip.shape[1] // side):
            yield fit_image(np.ascontiguousarray(strip[:, index * side : (index + 1) * side]), size, "crop")
        return
    with open_video(clip) as reader:
        for frame in reader:
            yield fit_image(frame.image, size, "crop")


def first_frame(clip: Path, size: int) -> np.ndarray:
    frames = read_frames(clip, size)
    try:
        return next(frames)
    finally:
        frames.close()  # releases the decoder now, not when the generator is collected


def _aligned(
    driving: Iterator[np.ndarray], target: Iterator[np.ndarray], pair: Pair
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(driving frame, target frame) in step; a length mismatch is the data's fault."""
    missing = object()
    for driving_frame, target_frame in itertools.zip_longest(driving, target, fillvalue=missing):
        if driving_frame is missing or target_frame is missing:
            raise BadInputError(f"{pair.target}: does not have as many frames as its driving clip {pair.driving}")
        yield driving_frame, target_frame


def _truth_rows(truth: dict[str, np.ndarray], clip: Path, start: int, count: int) -> slice:
    """Frames start .. start + count of a clip in its ground truth, which must cover them."""
    if start + count > len(truth["joints"]):
        frames = len(truth["joints"])
        raise BadInputError(f"{truth_path(clip)}: has ground truth for {frames} frames, the clip has more")
    return slice(start, start + count)


# ------------------------------------------------------------------------------------------------ runner
@torch.inference_mode()
def _reconstruct(
    animator: Animator, source: PreparedSource, frames: list[np.ndarray]
) -> tuple[Keypoints, GeneratorOutput]:
    """Keypoints of ``frames`` and the generator's output for them, used absolute (no normalisation, FACTS §10)."""
    kp = animator.keypoints(frames)
    return kp, animator.model.generator.animate(source.encoding, source.kp, kp)


class _Evaluation:
    """The running state of one evaluation: accumulators, keypoint samples, example rows, notes."""

    def __init__(self, animator: Animator, batch_size: int, examples: int, progress: Progress | None):
        self.animator = animator
        self.size = animator.size
        self.align_corners = animator.model.align_corners
        self.batch_size = batch_size
        self.examples = examples
        self.progress = progress
        self.frames_done = 0
        self.notes: list[str] = []
        self.reconstruction = RunningMean()
        self.flow = RunningMean()
        self.local_motion = {name: RunningMean() for name in ("error", "identity_error", "on_subject")}
        self.animation = {name: RunningMean() for name in ("l1", "still_source_l1", "driving_frame_l1")}
        self.animation_split = {
            name: RunningMean() for name in ("subject_l1", "background_l1", "still_source_subject_l1")
        }
        self.reconstruction_rows: list[np.ndarray] = []
        self.animation_rows: list[np.ndarray] = []
        # keypoint samples, one array per batch: predicted keypoints in pixels (B, 2K) and true joints (B, 2J)
        self.test_samples: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        self.fit_samples: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])

    def advance(self, frames: int) -> None:
        self.frames_done += frames
        if self.progress is not None:
            self.progress(self.frames_done, None)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    def usable_truth(self, clip: Path) -> dict[str, np.ndarray] | None:
        """The clip's ground truth if it describes frames at the model's size (pixel metrics need that)."""
        truth = load_truth(truth_path(clip))
        if truth is not None and int(truth["size"]) != self.size:
            self.note(
                f"ground truth is for {int(truth['size'])} px frames but the model works at {self.size} px: "
                "keypoint and flow errors skipped for those clips"
            )
            return None
        return truth

    def keypoint_pixels(self, kp: Keypoints) -> np.ndarray:
        """(B, K, 2) keypoints on [-1, 1] -> (B, 2K) pixels; any affine convention would do, the fit absorbs it."""
        pixels = normalized_to_pixels(kp.value.float(), self.size, self.size, self.align_corners)
        return pixels.reshape(len(pixels), -1).cpu().numpy()

    def reconstruct_clip(self, clip: Path) -> int:
        """Reconstruction L1 (with ground truth: flow errors, keypoint samples) of one clip; returns its frame count."""
        truth = self.usable_truth(clip)
        frames = read_frames(clip, self.size)
        first = next(frames)
        source = self.animator.prepare_source(first)
        generator = self.animator.model.generator
        start = 0
        for batch in batched(itertools.chain([first], frames), self.batch_size):
            kp, output = _reconstruct(self.animator, source, batch)
            prediction = output.prediction.float()
            predicted_frames = prediction.permute(0, 2, 3, 1).cpu().numpy()
            self.reconstruction.add(l1(predicted_frames, to_unit(np.stack(batch))), len(batch))
            if truth is not None:
                rows = _truth_rows(truth, clip, start, len(batch))
                # read the deformation at the resolution (and by the rule) the generator makes the frame from it
                deformation = generator.frame_deformation(output.motion.deformation.float(), (self.size, self.size))
                flows = flow_from_deformation(deformation, (self.size, self.size), self.align_corners).cpu().numpy()
                for t, flow in enumerate(flows, start):
                    true_flow, _ = ground_truth_flow(truth, 0, t)
                    valid = flow_visibility(truth, true_flow, 0, t)
                    if valid.any():
                        self.flow.add(end_point_error(flow, true_flow, valid), int(valid.sum()))
                pixels = self.keypoint_pixels(kp)
                self.add_local_motion(truth, source.kp, kp, pixels, start)
                self.test_samples[0].append(pixels)
                self.test_samples[1].append(truth["joints"][rows].reshape(len(batch), -1))
            start += len(batch)
            self.advance(len(batch))
        if len(self.reconstruction_rows) < self.examples:
            last, last_prediction = batch[-1], tensor_to_images(prediction[-1:])[0]
            self.reconstruction_rows.append(np.concatenate([first, last, last_prediction, last], axis=1))
        return start

    def add_local_motion(self, truth: dict[str, np.ndarray], kp_source: Keypoints, kp_driving: Keypoints,
                         pixels: np.ndarray, start: int) -> None:
        """Local-motion samples of driving frames ``start`` .. ``start + B`` of a clip whose frame 0 is the source.

        pixels: (B, 2K) the driving keypoints as :meth:`keypoint_pixels` gives them.
        """
        points = pixels.reshape(kp_driving.batch_size, kp_driving.num_kp, 2)
        if kp_driving.jacobian is not None and kp_source.jacobian is not None:
            # the linear part of the first-order motion T_k (seed eq. 4.1); the grid's scale cancels out of it
            jacobians = kp_source.jacobian.float() @ torch.inverse(kp_driving.jacobian.float())
            local = jacobians.cpu().numpy()
        else:
            local = np.broadcast_to(np.eye(2), (*points.shape[:2], 2, 2))
        affines, labels = truth["affines"], truth["labels"]
        for t, (frame_points, frame_local) in enumerate(zip(points, local), start):
            true_maps, on_subject = true_local_motion(affines[0], affines[t], labels[t], frame_points)
            self.local_motion["on_subject"].add(float(on_subject.mean()), len(on_subject))
            count = int(on_subject.sum())
            if count:
                true_maps = true_maps[on_subject]
                self.local_motion["error"].add(float(matrix_errors(frame_local[on_subject], true_maps).mean()), count)
                identity = np.broadcast_to(np.eye(2), true_maps.shape)
                self.local_motion["identity_error"].add(float(matrix_errors(identity, true_maps).mean()), count)

    def local_motion_score(self) -> LocalMotionScore | None:
        motion = self.local_motion
        error, identity_error, on_subject = motion["error"], motion["identity_error"], motion["on_subject"]
        if not on_subject.weight:
            return None
        if not error.weight:
            self.note("no keypoint lies on the subject in any frame: local motion error skipped")
            return None
        return LocalMotionScore(
            error=error.mean, identity_error=identity_error.mean, on_subject=on_subject.mean, samples=int(error.weight)
        )

    def collect_fit_samples(self, clip: Path) -> None:
        """Predicted keypoints and true joints of every frame of a training clip, for the keypoint map."""
        truth = self.usable_truth(clip)
        if truth is None:
            return
        start = 0
        for batch in batched(read_frames(clip, self.size), self.batch_size):
            rows = _truth_rows(truth, clip, start, len(batch))
            self.fit_samples[0].append(self.keypoint_pixels(self.animator.keypoints(batch)))
            self.fit_samples[1].append(truth["joints"][rows].reshape(len(batch), -1))
            start += len(batch)
            self.advance(len(batch))

    def animate_pair(self, pair: Pair) -> int:
        """Cross-identity L1 of one pair, animated as ``animate run`` does by default; returns its frame count."""
        source_image = first_frame(pair.source, self.size)
        source = self.animator.prepare_source(source_image)
        still = to_unit(source_image)
        in_step = _aligned(read_frames(pair.driving, self.size), read_frames(pair.target, self.size), pair)
        # the target rides along as the tag of its driving frame
        tagged = (((driving, target), driving) for driving, target in in_step)
        options = MotionOptions(relative=True, adapt_scale=True)
        target_truth = self.usable_truth(pair.target)
        count = 0
        for (driving, target), (result,) in self.animator.animate([source], tagged, None, options, self.batch_size):
            truth, prediction = to_unit(target), to_unit(result)
            self.animation["l1"].add(l1(prediction, truth))
            self.animation["still_source_l1"].add(l1(still, truth))
            self.animation["driving_frame_l1"].add(l1(to_unit(driving), truth))
            if target_truth is not None:
                subject = target_truth["labels"][_truth_rows(target_truth, pair.target, count, 1)][0] > 0
                self.animation_split["subject_l1"].add(l1_on_mask(prediction, truth, subject))
                self.animation_split["background_l1"].add(l1_on_mask(prediction, truth, ~subject))
                self.animation_split["still_source_subject_l1"].add(l1_on_mask(still, truth, subject))
            count += 1
            self.advance(1)
        if len(self.animation_rows) < self.examples:
            self.animation_rows.append(np.concatenate([source_image, driving, result, target], axis=1))
        return count

    def keypoint_score(self) -> KeypointScore | None:
        if not self.test_samples[0]:
            return None
        if not self.fit_samples[0]:
            self.note("no train/ clips with ground truth at the model's size to fit the keypoint map: skipped")
            return None
        fit_features, fit_joints = (np.concatenate(samples) for samples in self.fit_samples)
        test_features, test_joints = (np.concatenate(samples) for samples in self.test_samples)
        weights = fit_linear_map(fit_features, fit_joints)
        predicted = apply_linear_map(weights, test_features).reshape(len(test_features), -1, 2)
        error = keypoint_error(predicted, test_joints.reshape(predicted.shape))
        return KeypointScore(error_px=error, fit_frames=len(fit_features), frames=len(test_features))


def evaluate(
    model: AnimationModel,
    data: str | Path | EvaluationPlan,
    *,
    split: str = "test",
    max_videos: int | None = None,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    examples: int = DEFAULT_EXAMPLES,
    progress: Progress | None = None,
) -> EvaluationResult:
    """Evaluate ``model`` on a data folder (planned here with ``split`` and ``max_videos``) or on a ready plan.

    ``progress(frames_done, None)`` is called as frames go through the model. ``examples`` caps the rows of each
    kind in the examples grid. Clips stream: one clip's frames are read while the model works batch by batch.
    """
    plan = data if isinstance(data, EvaluationPlan) else plan_evaluation(data, split, max_videos)
    animator = Animator(model, torch.device(device))
    state = _Evaluation(animator, batch_size, examples, progress)
    frames = sum(state.reconstruct_clip(clip) for clip in plan.clips)
    if state.test_samples[0]:
        for clip in plan.fit_clips:
            state.collect_fit_samples(clip)
    keypoints = state.keypoint_score()
    if keypoints is not None and plan.split == "train":
        state.note("the keypoint map was fitted on the clips it is measured on (in-sample): --split train")
    flow = FlowScore(epe=state.flow.mean, pixels=int(state.flow.weight)) if state.flow.weight else None
    animation = None
    if plan.pairs:
        pair_frames = sum(state.animate_pair(pair) for pair in plan.pairs)
        split = {name: mean.mean for name, mean in state.animation_split.items() if mean.weight == pair_frames}
        animation = AnimationScore(
            **{name: mean.mean for name, mean in state.animation.items()}, pairs=len(plan.pairs), frames=pair_frames,
            **split,
        )
    rows = state.reconstruction_rows + state.animation_rows
    return EvaluationResult(
        checkpoint=model.path,
        data=str(plan.data_dir),
        split=plan.split,
        reconstruction=ReconstructionScore(l1=state.reconstruction.mean, frames=frames, videos=len(plan.clips)),
        keypoints=keypoints,
        flow=flow,
        local_motion=state.local_motion_score(),
        animation=animation,
        notes=state.notes,
        examples=np.concatenate(rows, axis=0) if rows else None,
        example_rows=(len(state.reconstruction_rows), len(state.animation_rows)),
    )


# ------------------------------------------------------------------------------------------------ reporting
def summary_rows(result: EvaluationResult) -> list[tuple[str, str, str]]:
    """(metric, value, detail) rows, shared by the terminal table and report.md."""
    rows = [
        (
            "reconstruction L1",
            f"{result.reconstruction.l1:.4f}",
            f"{result.reconstruction.frames} frames of {result.reconstruction.videos} clips, absolute keypoints",
        )
    ]
    if result.keypoints is not None:
        score = result.keypoints
        rows.append(("keypoint error", f"{score.error_px:.2f} px",
                     f"affine map fitted on {score.fit_frames} train frames, measured on {score.frames} frames"))
    if result.flow is not None:
        flow = result.flow
        rows.append(("flow end-point error", f"{flow.epe:.2f} px", f"{flow.pixels} visible subject pixels"))
    if result.local_motion is not None:
        motion = result.local_motion
        rows += [
            ("local motion error", f"{motion.error:.3f}",
             f"{motion.samples} keypoints on the subject ({motion.on_subject:.0%} of all)"),
            ("  identity's error", f"{motion.identity_error:.3f}", "baseline: no local rotation or scaling"),
        ]
    if result.animation is not None:
        score = result.animation
        rows += [
            ("animation L1", f"{score.l1:.4f}", f"{score.frames} frames of {score.pairs} pairs, relative, adapt-scale"),
            ("  still source L1", f"{score.still_source_l1:.4f}", "baseline: the source image at every frame"),
            ("  driving frame L1", f"{score.driving_frame_l1:.4f}", "baseline: the driving frame itself"),
        ]
        if score.subject_l1 is not None:
            rows += [
                ("  of which on the subject", f"{score.subject_l1:.4f}",
                 f"the still source's: {score.still_source_subject_l1:.4f}"),
                ("  of which on the background", f"{score.background_l1:.4f}",
                 f"the still source's: {score.still_source_l1 - score.still_source_subject_l1:.4f}"),
            ]
    return rows


def _markdown(result: EvaluationResult, examples_name: str | None) -> str:
    lines = [
        "# Evaluation",
        "",
        f"- checkpoint: `{result.checkpoint}`",
        f"- data: `{result.data}`, split `{result.split}`",
        "",
        "| metric | value | over |",
        "|---|---:|---|",
        *(f"| {metric.strip()} | {value} | {detail} |" for metric, value, detail in summary_rows(result)),
        "",
        "Conventions: L1 is the mean absolute difference on [0, 1] over pixels and channels, averaged over frames. "
        "Reconstruction animates frame 0 of each clip with each of its frames (keypoints absolute). "
        "The keypoint error maps the predicted keypoints of a frame (in pixels) affinely to the true joints "
        "(least squares on train/), then averages the Euclidean distance per joint. The flow end-point error "
        "compares the dense motion's backward flow (driving pixel -> source pixel) with the exact flow from frame "
        "t to frame 0, on subject pixels visible in both. The local motion error compares each keypoint's linear "
        "motion (J_src J_drv^-1 for first order, the identity for zeroth order) with the true driving -> source "
        "motion of the part under the driving keypoint (Frobenius norm). Animation uses the driving clip in relative "
        "mode with adapt-scale, as `animate run` does, and compares its uint8 frames with the rendered targets.",
    ]
    if examples_name is not None:
        recon_rows, pair_rows = result.example_rows
        lines += [
            "",
            "## Examples",
            "",
            f"![examples]({examples_name})",
            "",
            f"Columns: source | driving | prediction | target, at the last frame. Rows: {recon_rows} reconstructed "
            f"clips (driving = target), then {pair_rows} cross-identity pairs.",
        ]
    if result.notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in result.notes)]
    return "\n".join(lines) + "\n"


def write_report(result: EvaluationResult, out_dir: str | Path) -> list[Path]:
    """Write ``out_dir/report.md`` and ``out_dir/examples.png`` (when there are examples); return the paths."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"{out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if result.examples is not None:
        write_image(out_dir / EXAMPLES_FILE, result.examples)
        written.append(out_dir / EXAMPLES_FILE)
    report = out_dir / REPORT_FILE
    report.write_text(_markdown(result, EXAMPLES_FILE if result.examples is not None else None))
    return [report, *written]
