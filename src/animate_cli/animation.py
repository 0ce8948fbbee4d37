"""``animate run`` as a library call: sources + a driving video -> finished videos with sound.

The CLI builds a :class:`RunRequest`, calls :func:`run_animation` and reports the :class:`RunResult` list; this
module does the work: read and fit the images, stream the driving video through the :class:`Animator`, compose the
output frames, and hand them to one writer per source (audio muxed, written atomically).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from animate_cli.errors import BadInputError
from animate_cli.pipeline import Animator, BackgroundWriter, MotionOptions, prefetch

LAYOUTS = ("result", "side-by-side")
FIT_MODES = ("crop", "pad", "stretch")


@dataclass(frozen=True)
class RunRequest:
    sources: list[Path]
    driving: Path
    outputs: list[str]
    motion: MotionOptions = field(default_factory=MotionOptions)
    ref_frame: int = 0
    batch_size: int = 8
    fit: str = "crop"
    driving_box: tuple[int, int, int, int] | None = None
    background: tuple[int, int, int] = (255, 255, 255)
    layout: str = "result"
    output_size: tuple[int, int] | None = None
    audio: bool = True
    overwrite: bool = False


@dataclass(frozen=True)
class RunResult:
    output: str
    frames: int
    fps: float
    seconds: float
    device: str
    checkpoint: str | None

    def to_json(self) -> dict:
        return {
            "output": self.output, "frames": self.frames, "fps": round(self.fps, 3),
            "seconds": round(self.seconds, 3), "device": self.device, "checkpoint": self.checkpoint,
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
    from animate_cli.media.images import read_image
    from animate_cli.media.video import probe
    from animate_cli.media.writer import check_output

    for source in request.sources:
        read_image(source, background=request.background)
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


def run_animation(
    request: RunRequest,
    animator: Animator,
    checkpoint: str | None,
    progress: Callable[[int, int | None], None] | None = None,
) -> list[RunResult]:
    """Animate every source with the driving video; returns one result per written file."""
    from animate_cli.media.images import read_image
    from animate_cli.media.resize import fit_image
    from animate_cli.media.video import open_video, probe
    from animate_cli.media.writer import VideoWriter

    started = time.perf_counter()
    size = animator.size
    info = probe(request.driving)
    source_images = [fit_image(read_image(p, background=request.background), size, request.fit) for p in request.sources]
    prepared = [animator.prepare_source(image) for image in source_images]

    def fitted(image: np.ndarray) -> np.ndarray:
        return fit_image(image, size, request.fit, box=request.driving_box)

    reference = _reference_frame(request, fitted) if request.motion.relative else None
    count = 0
    with contextlib.ExitStack() as stack:
        writers = [
            stack.enter_context(
                VideoWriter(out, fps=info.fps, audio_source=request.driving if request.audio else None,
                            overwrite=request.overwrite)
            )
            for out in request.outputs
        ]
        reader = stack.enter_context(open_video(request.driving))

        def fitted_frames():
            for frame in reader:
                image = fitted(frame.image)
                yield (frame.time, image), image

        # decoding and fitting run a few frames ahead in their own thread, encoding in another
        decoded = prefetch(fitted_frames())

        def write(item: tuple[tuple[float, np.ndarray], list[np.ndarray]]) -> None:
            (frame_time, driving_image), results = item
            for writer, source_image, result in zip(writers, source_images, results):
                frame = compose_frame(result, source_image, driving_image, request.layout, request.output_size)
                writer.write(frame, time=frame_time)

        encoder = BackgroundWriter(write)
        try:
            for item in animator.animate(prepared, decoded, reference, request.motion, request.batch_size):
                encoder.put(item)
                count += 1
                if progress is not None:
                    progress(count, info.frame_count)
        finally:
            encoder.close()
    if count == 0:
        raise BadInputError(f"{request.driving}: has no frames")
    seconds = time.perf_counter() - started
    return [
        RunResult(output=str(out), frames=count, fps=count / seconds if seconds > 0 else 0.0, seconds=seconds,
                  device=str(animator.device), checkpoint=checkpoint)
        for out in request.outputs
    ]


def _reference_frame(request: RunRequest, fitted: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The driving frame ``ref_frame`` (decoding only up to it), which maps onto the source's pose."""
    from animate_cli.media.video import open_video

    with open_video(request.driving) as reader:
        for frame in reader:
            if frame.index == request.ref_frame:
                return fitted(frame.image)
    raise BadInputError(f"--ref-frame {request.ref_frame} is past the end of {request.driving}")
