"""``animate run`` as a library call: sources + a driving video -> finished videos with sound.

The CLI builds a :class:`RunRequest`, calls :func:`run_animation` and reports the :class:`RunResult` list; this
module does the work: read and fit the images, stream the driving video through the :class:`Animator`, compose the
output frames, and hand them to one writer per source (audio muxed, written atomically).

Two options change what is animated: ``find_best_frame`` picks each source's reference frame in a first, cheap
pass over the driving video (:mod:`animate_cli.best_frame`); ``source_box`` animates only a square of each source
and pastes the results back into the full image (:mod:`animate_cli.paste`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from animate_cli.cropping import Box
from animate_cli.errors import BadInputError
from animate_cli.paste import Placement
from animate_cli.pipeline import Animator, BackgroundWriter, MotionOptions, PreparedSource, prefetch

LAYOUTS = ("result", "side-by-side")
FIT_MODES = ("crop", "pad", "stretch")


@dataclass(frozen=True)
class RunRequest:
    sources: list[Path]
    driving: Path
    outputs: list[str]
    motion: MotionOptions = field(default_factory=MotionOptions)
    ref_frame: int = 0
    batch_size: int = 4
    fit: str = "crop"
    driving_box: tuple[int, int, int, int] | None = None
    background: tuple[int, int, int] = (255, 255, 255)
    layout: str = "result"
    output_size: tuple[int, int] | None = None
    audio: bool = True
    overwrite: bool = False
    # choose the reference frame per source: the driving frame whose pose is closest (FOMM's --find_best_frame)
    find_best_frame: bool = False
    best_frame_by: str | None = None  # 'landmarks', 'keypoints'; None: landmarks when face-alignment is there
    landmarks_weights: Path | None = None  # face-alignment's weight files, when not in torch hub's cache
    # animate only this square of each source and paste the results back: 'auto' or (x, y, w, h)
    source_box: tuple[int, int, int, int] | str | None = None


@dataclass(frozen=True)
class RunResult:
    output: str
    frames: int
    fps: float
    seconds: float
    device: str
    precision: str  # the precision it ran in: fp32, fp16 or bf16 (``auto`` resolved)
    checkpoint: str | None
    ref_frame: int | None = None  # the driving frame mapped onto the source's pose (None: absolute motion)

    def to_json(self) -> dict:
        return {
            "output": self.output, "frames": self.frames, "fps": round(self.fps, 3),
            "seconds": round(self.seconds, 3), "device": self.device, "precision": self.precision,
            "checkpoint": self.checkpoint,
            "ref_frame": self.ref_frame,
        }


def default_output_name(source: Path, driving: Path) -> str:
    return f"{source.stem}_{driving.stem if driving.is_file() else driving.name}.mp4"


def plan_outputs(sources: list[Path], driving: Path, output: str | None) -> list[str]:
    """Where each source's result goes.

    One source: ``-o`` as given (a video file, a folder/ of PNG frames or a name%05d.png pattern).
    Several sources: ``-o`` is an existing folder that receives ``<source>_<driving>.mp4`` per source.
    No ``-o``: ``<source>_<driving>.mp4`` in the working directory.
    """
    if output is None:
        return [default_output_name(s, driving) for s in sources]
    if len(sources) == 1:
        return [output]
    folder = Path(output)
    if not (output.endswith(("/", os.sep)) or folder.is_dir()):
        raise BadInputError(f"{len(sources)} sources need an output folder (-o {output}/), got a file name")
    if not folder.is_dir():
        raise BadInputError(f"{output}: output folder does not exist")
    return [str(folder / default_output_name(s, driving)) for s in sources]


def check_inputs(request: RunRequest) -> None:
    """Fail fast, before any model is loaded: every source readable, the driving video decodable, outputs free."""
    from animate_cli.best_frame import resolve_method
    from animate_cli.landmarks import require_face_alignment
    from animate_cli.media.images import read_image
    from animate_cli.media.video import probe
    from animate_cli.media.writer import check_output

    if request.find_best_frame:
        if not request.motion.relative:
            raise BadInputError("--find-best-frame picks the reference frame of relative motion; drop --absolute")
        if request.ref_frame != 0:
            raise BadInputError("--find-best-frame chooses the reference frame itself; drop --ref-frame")
        if resolve_method(request.best_frame_by) == "landmarks":
            require_face_alignment("--best-frame-by landmarks")
    for source in request.sources:
        image = read_image(source, background=request.background)
        if isinstance(request.source_box, tuple):
            _place(source, image, request.source_box)  # refuses a box off the image before the model loads
    probe(request.driving)
    for output in request.outputs:
        check_output(output, overwrite=request.overwrite)
    if len(set(request.outputs)) != len(request.outputs):
        raise BadInputError("two sources would write the same output file; give the sources different names")


def compose_frame(
    result: np.ndarray, source: np.ndarray, driving: np.ndarray, layout: str, output_size: tuple[int, int] | None
) -> np.ndarray:
    """The output frame: the result alone, or source | driving | result, then resampled to ``output_size``."""
    from animate_cli.media.resize import resize_frame

    frame = result if layout == "result" else np.concatenate([source, driving, result], axis=1)
    if output_size is not None and (frame.shape[1], frame.shape[0]) != output_size:
        frame = resize_frame(frame, output_size)
    return frame


@dataclass(frozen=True)
class _Source:
    """A source as animated: ``fitted`` is what the model sees; ``placement`` pastes results back into the full
    image (``--source-box``), or None."""

    fitted: np.ndarray
    placement: Placement | None

    def frame(self, result: np.ndarray, driving: np.ndarray, request: RunRequest) -> np.ndarray:
        """The output frame for one animated ``result`` (composed as ``request.layout`` asks)."""
        from animate_cli.media.resize import resize_frame

        if self.placement is None:
            return compose_frame(result, self.fitted, driving, request.layout, request.output_size)
        full = self.placement.paste(result)
        if request.layout != "result":  # side by side with the full source: the driving frame at its height
            driving = resize_frame(driving, (full.shape[0], full.shape[0]))
        return compose_frame(full, self.placement.image, driving, request.layout, request.output_size)


def _load_sources(request: RunRequest, animator: Animator) -> list[_Source]:
    """Each source read and brought to the model's size: fitted whole, or only its ``--source-box`` square."""
    from animate_cli.media.images import read_image
    from animate_cli.media.resize import fit_image

    images = [read_image(path, background=request.background) for path in request.sources]
    if request.source_box is None:
        return [_Source(fit_image(image, animator.size, request.fit), None) for image in images]
    find_subject = _largest_subject(request, animator) if request.source_box == "auto" else None
    sources = []
    for path, image in zip(request.sources, images):
        placement = _place(path, image, request.source_box, find_subject)
        sources.append(_Source(placement.model_input(animator.size), placement))
    return sources


def _place(
    path: Path,
    image: np.ndarray,
    box: tuple[int, int, int, int] | str,
    find_subject: Callable[[np.ndarray], Box] | None = None,
) -> Placement:
    """``place_source`` with the source named in its errors."""
    from animate_cli.paste import place_source

    try:
        return place_source(image, box, find_subject)
    except BadInputError as error:
        raise BadInputError(f"{path}: --source-box: {error}") from None


def _largest_subject(request: RunRequest, animator: Animator) -> Callable[[np.ndarray], Box]:
    """``--source-box auto``'s subject: the largest face when face-alignment is installed, else the extent of
    the model's keypoints on the whole (letterboxed) image."""
    from animate_cli.cropping import resolve_detector, subject_box_finder

    find_boxes = subject_box_finder(resolve_detector(None), animator.model, animator.device,
                                    request.landmarks_weights, "--source-box auto")

    def largest(image: np.ndarray) -> Box:
        boxes = find_boxes([image])[0]
        if not boxes:
            raise BadInputError("no face found for --source-box auto (give the box as x,y,w,h)")
        return max(boxes, key=lambda box: (box[2] - box[0]) * (box[3] - box[1]))

    return largest


def _references(
    request: RunRequest, animator: Animator, sources: list[_Source], fitted: Callable[[np.ndarray], np.ndarray]
) -> list[tuple[int, np.ndarray] | None]:
    """Per source, (index, fitted image) of the driving frame mapped onto its pose; None for absolute motion."""
    from animate_cli.media.video import open_video

    if not request.motion.relative:
        return [None] * len(sources)
    if not request.find_best_frame:
        reference = (request.ref_frame, _reference_frame(request, fitted))
        return [reference] * len(sources)
    from animate_cli.best_frame import find_best_frames, pose_finder

    find_poses = pose_finder(request.best_frame_by, animator, request.landmarks_weights)
    with open_video(request.driving) as reader:
        frames = (fitted(frame.image) for frame in reader)
        # closed before the reader, so an error or Ctrl-C stops the decoding thread first (see _animate_pass)
        with contextlib.closing(prefetch(frames)) as decoded:
            best = find_best_frames([s.fitted for s in sources], decoded, find_poses, request.batch_size,
                                    [str(path) for path in request.sources])
    return [(choice.index, choice.image) for choice in best]


def run_animation(
    request: RunRequest,
    animator: Animator,
    checkpoint: str | None,
    progress: Callable[[int, int | None], None] | None = None,
) -> list[RunResult]:
    """Animate every source with the driving video; returns one result per written file.

    Sources sharing a reference frame are animated in one pass over the driving video (with
    ``--find-best-frame``, sources matched to different frames take a pass each).
    """
    from animate_cli.media.resize import fit_image
    from animate_cli.media.video import probe

    started = time.perf_counter()
    info = probe(request.driving)
    sources = _load_sources(request, animator)
    prepared = [animator.prepare_source(source.fitted) for source in sources]

    def fitted(image: np.ndarray) -> np.ndarray:
        return fit_image(image, animator.size, request.fit, box=request.driving_box)

    references = _references(request, animator, sources, fitted)
    groups: dict[int | None, list[int]] = {}
    for slot, reference in enumerate(references):
        groups.setdefault(None if reference is None else reference[0], []).append(slot)
    total = None if info.frame_count is None else info.frame_count * len(groups)
    done = 0  # frames animated by the passes before the current one
    frames: dict[int, int] = {}

    def advance(count: int) -> None:
        if progress is not None:
            progress(done + count, total)

    for members in groups.values():
        reference = references[members[0]]
        count = _animate_pass(
            request, animator, info.fps, [sources[i] for i in members], [prepared[i] for i in members],
            [request.outputs[i] for i in members], fitted, None if reference is None else reference[1], advance,
        )
        done += count
        frames.update((i, count) for i in members)
    if done == 0:
        raise BadInputError(f"{request.driving}: has no frames")
    seconds = time.perf_counter() - started
    return [
        RunResult(output=str(out), frames=frames[slot], fps=done / seconds if seconds > 0 else 0.0,
                  seconds=seconds, device=str(animator.device), precision=animator.precision,
                  checkpoint=checkpoint,
                  ref_frame=None if references[slot] is None else references[slot][0])
        for slot, out in enumerate(request.outputs)
    ]


def _animate_pass(
    request: RunRequest,
    animator: Animator,
    fps: float,
    sources: list[_Source],
    prepared: list[PreparedSource],
    outputs: list[str],
    fitted: Callable[[np.ndarray], np.ndarray],
    reference: np.ndarray | None,
    advance: Callable[[int], None],
) -> int:
    """Stream the driving video once through the animator for ``sources``; returns the frame count."""
    from animate_cli.media.video import open_video
    from animate_cli.media.writer import VideoWriter

    count = 0
    with contextlib.ExitStack() as stack:
        writers = [
            stack.enter_context(
                VideoWriter(out, fps=fps, audio_source=request.driving if request.audio else None,
                            overwrite=request.overwrite)
            )
            for out in outputs
        ]
        reader = stack.enter_context(open_video(request.driving))

        def fitted_frames():
            for frame in reader:
                image = fitted(frame.image)
                yield (frame.time, image), image

        # decoding and fitting run ahead in their own thread, encoding in another; each queue holds two batches, so
        # a whole batch is decoded, and the last one's frames are encoded, while the model computes the next
        depth = max(16, 2 * request.batch_size)
        decoded = prefetch(fitted_frames(), depth=depth)
        # on an error or Ctrl-C, stop the decoding thread before the stack closes the reader it decodes from
        # (closing a container under a running decoder crashes PyAV)
        stack.callback(decoded.close)

        def write(item: tuple[tuple[float, np.ndarray], list[np.ndarray]]) -> None:
            (frame_time, driving_image), results = item
            for writer, source, result in zip(writers, sources, results):
                writer.write(source.frame(result, driving_image, request), time=frame_time)

        encoder = BackgroundWriter(write, depth=depth)
        try:
            for item in animator.animate(prepared, decoded, reference, request.motion, request.batch_size):
                encoder.put(item)
                count += 1
                advance(count)
        finally:
            encoder.close()
    return count


def _reference_frame(request: RunRequest, fitted: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The driving frame ``ref_frame`` (decoding only up to it), which maps onto the source's pose."""
    from animate_cli.media.video import open_video

    with open_video(request.driving) as reader:
        for frame in reader:
            if frame.index == request.ref_frame:
                return fitted(frame.image)
    raise BadInputError(f"--ref-frame {request.ref_frame} is past the end of {request.driving}")
