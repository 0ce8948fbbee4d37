"""The driving frame whose pose best matches the source (the published demo's ``find_best_frame``).

The demo animates ``driving[i:]`` forward and ``driving[:i+1]`` backward, both anchored at the best frame i, and
outputs ``backward[::-1] + forward[1:]``. Relative motion is normalised frame by frame against the anchor only, so
that is exactly every frame animated with relative motion measured from frame i: ``animate run`` therefore just
uses frame i as the reference frame and keeps streaming in order (``tests/test_best_frame.py`` checks the equality).

A pose is a set of points (68 face landmarks, or the model's K keypoints), compared after removing position and
scale: centred on their mean and divided by the square root of their convex hull's area. The score is the sum of
squared differences; the first frame with the strictly smallest score wins.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from animate_cli.errors import BadInputError
from animate_cli.motion import convex_hull_area

if TYPE_CHECKING:
    from animate_cli.pipeline import Animator

#: Finds one pose per image: (N, 2) points, or None where there is none (no face found).
PoseFinder = Callable[[list[np.ndarray]], list[np.ndarray | None]]
METHODS = ("landmarks", "keypoints")


@dataclass(frozen=True)
class BestFrame:
    """The chosen driving frame: its index, its score and its (fitted) image."""

    index: int
    score: float
    image: np.ndarray


def normalized_pose(points: np.ndarray) -> np.ndarray | None:
    """(N, 2) points centred on their mean and divided by sqrt(hull area); None when the hull is flat."""
    array = np.asarray(points, dtype=np.float64)
    area = convex_hull_area(array)
    if area <= 0:
        return None  # collinear points have no scale to divide by: such a pose matches nothing
    return (array - array.mean(axis=0)) / math.sqrt(area)


def pose_distance(first: np.ndarray, second: np.ndarray) -> float:
    """Sum of squared differences of two normalised poses (the demo's score, no square root)."""
    return float(((first - second) ** 2).sum())


def resolve_method(method: str | None) -> str:
    """'landmarks' or 'keypoints' for a user's choice; None or 'auto' takes landmarks when face-alignment is there."""
    from animate_cli.landmarks import face_alignment_available

    if method in (None, "auto"):
        return "landmarks" if face_alignment_available() else "keypoints"
    if method not in METHODS:
        raise BadInputError(f"unknown best-frame method '{method}' (use {', '.join(METHODS)} or auto)")
    return method


def pose_finder(method: str | None, animator: Animator, landmarks_weights: Path | None) -> PoseFinder:
    """Poses by face landmarks or by the model's keypoints (``method`` as :func:`resolve_method` takes it)."""
    if resolve_method(method) == "landmarks":
        from animate_cli.landmarks import FaceAnalyzer

        faces = FaceAnalyzer(str(animator.device), landmarks_weights, "--best-frame-by landmarks")
        return lambda images: [faces.landmarks(image) for image in images]
    return lambda images: list(animator.keypoints(images).value.cpu().numpy())


def find_best_frames(
    sources: list[np.ndarray],
    frames: Iterable[np.ndarray],
    find_poses: PoseFinder,
    batch_size: int = 8,
    names: list[str] | None = None,
) -> list[BestFrame]:
    """For each source image, the driving frame with the closest pose; one streaming pass over ``frames``.

    sources and frames are images as the model sees them; ``names`` label the sources in error messages.
    """
    from animate_cli.pipeline import batched

    labels = names if names is not None else [f"source {i + 1}" for i in range(len(sources))]
    targets = []
    for label, pose in zip(labels, find_poses(sources)):
        target = None if pose is None else normalized_pose(pose)
        if target is None:
            raise BadInputError(f"{label}: no pose found to match (no face, or degenerate keypoints)")
        targets.append(target)
    best: list[BestFrame | None] = [None] * len(targets)
    for batch in batched(enumerate(frames), batch_size):
        for (index, image), pose in zip(batch, find_poses([image for _, image in batch])):
            shape = None if pose is None else normalized_pose(pose)
            if shape is None:
                continue  # a frame without a face cannot be the best match (the demo would crash here)
            for slot, target in enumerate(targets):
                score = pose_distance(target, shape)
                current = best[slot]
                if current is None or score < current.score:
                    best[slot] = BestFrame(index, score, image)
    found = [choice for choice in best if choice is not None]
    if len(found) != len(best):
        raise BadInputError("no driving frame shows a pose to match (no face found in any frame)")
    return found
