"""``animate keypoints`` as a library call: what the model sees in each frame, as data and as pictures.

For every frame of an image, a video or a frame folder: the K keypoints (pixel and normalised coordinates),
their jacobians and the spread of their heatmaps, exported as JSON or NPZ; optionally a video with the keypoints
drawn over the frames and, given a source image, the motion the generator derives from them (masks, occlusion,
dense flow, deformed source, result) side by side. Frames stream through in batches; only the small per-frame
keypoint records are kept until the export is written.

Pixel coordinates are in the model's S x S frame (the input after ``--fit``) with ±1 at the centres of the outer
pixels, the convention the dense motion network reads keypoints with.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from animate_cli.checkpoint import AnimationModel
from animate_cli.errors import BadInputError
from animate_cli.media.common import publish
from animate_cli.structures import Keypoints

PANELS = ("masks", "occlusion", "flow", "deformed", "result")
DATA_SUFFIXES = (".json", ".npz")
#: Flow displacement (in [-1, 1] units) shown at full colour saturation. A fixed scale keeps colours comparable
#: from frame to frame; a quarter of the frame covers the motion of talking heads and most bodies.
FLOW_SCALE = 0.25


@torch.inference_mode()
def detect_keypoints(model: AnimationModel, images: list[np.ndarray], device: torch.device) -> Keypoints:
    """Keypoints, jacobians and heatmap covariances of (S, S, 3) uint8 images, as float32 tensors on the CPU."""
    from animate_cli.pipeline import image_to_tensor

    return model.kp_detector(image_to_tensor(images, device), with_covariance=True).to("cpu", torch.float32)


def pixel_scale(size: int) -> float:
    """Pixels per normalised unit in an S x S frame (±1 = the outer pixel centres)."""
    return (size - 1) / 2


@dataclass(frozen=True)
class InspectRequest:
    """What ``animate keypoints`` was asked for. ``data_output``: .json/.npz or None; ``visual_output``: any
    output ``VideoWriter`` takes (an image file for an image input), or None."""

    input: Path
    data_output: Path | None
    visual_output: str | None
    fit: str = "crop"
    batch_size: int = 8
    trails: int = 0
    source: Path | None = None
    panels: tuple[str, ...] = ()
    overwrite: bool = False


@dataclass(frozen=True)
class InspectResult:
    frames: int
    data_output: str | None
    visual_output: str | None
    seconds: float
    device: str
    checkpoint: str | None

    def to_json(self) -> dict:
        return {
            "frames": self.frames, "keypoints": self.data_output, "visualization": self.visual_output,
            "seconds": round(self.seconds, 3), "device": self.device, "checkpoint": self.checkpoint,
        }


class KeypointLog:
    """Per-frame keypoints collected for the export (a few hundred bytes a frame)."""

    def __init__(self, checkpoint: str | None, size: int):
        self.checkpoint = checkpoint
        self.size = size
        self.indices: list[int] = []
        self.times: list[float] = []
        self.values: list[np.ndarray] = []  # (K, 2) normalised
        self.jacobians: list[np.ndarray] = []  # (K, 2, 2), first-order models only
        self.covariances: list[np.ndarray] = []  # (K, 2, 2) normalised units

    def add(self, index: int, frame_time: float, kp: Keypoints) -> None:
        """Record frame ``index`` shown at ``frame_time`` s; ``kp`` is a batch of one with covariance."""
        self.indices.append(index)
        self.times.append(frame_time)
        self.values.append(kp.value[0].numpy())
        if kp.jacobian is not None:
            self.jacobians.append(kp.jacobian[0].numpy())
        self.covariances.append(kp.covariance[0].numpy())

    def pixels(self, values: np.ndarray) -> np.ndarray:
        from animate_cli.visualize import normalized_to_pixels

        return normalized_to_pixels(values, self.size, self.size)

    def to_json(self) -> dict:
        """``{"checkpoint", "size", "frames": [{"index", "time", "keypoints": [{"x", "y", "x_norm", "y_norm",
        "jacobian", "covariance"}]}]}``; covariance in normalised units (times ``pixel_scale(size)**2`` for pixels²)."""

        def rounded(array: np.ndarray) -> list:
            return np.round(array.astype(np.float64), 6).tolist()

        frames = []
        for position, (index, frame_time, values) in enumerate(zip(self.indices, self.times, self.values)):
            pixels = self.pixels(values)
            keypoints = [
                {
                    "x": round(float(pixels[k, 0]), 4), "y": round(float(pixels[k, 1]), 4),
                    "x_norm": round(float(values[k, 0]), 6), "y_norm": round(float(values[k, 1]), 6),
                    "jacobian": rounded(self.jacobians[position][k]) if self.jacobians else None,
                    "covariance": rounded(self.covariances[position][k]),
                }
                for k in range(len(values))
            ]
            frames.append({"index": index, "time": round(frame_time, 6), "keypoints": keypoints})
        return {"checkpoint": self.checkpoint, "size": self.size, "frames": frames}

    def arrays(self) -> dict[str, np.ndarray]:
        """The NPZ content: index (T,), time (T,), keypoints (T, K, 2) pixels, keypoints_norm (T, K, 2),
        jacobian (T, K, 2, 2) for first-order models, covariance (T, K, 2, 2), size, checkpoint."""
        values = np.stack(self.values)
        arrays = {
            "index": np.asarray(self.indices, dtype=np.int64),
            "time": np.asarray(self.times, dtype=np.float64),
            "keypoints": self.pixels(values).astype(np.float32),
            "keypoints_norm": values,
            "covariance": np.stack(self.covariances),
            "size": np.asarray(self.size),
            "checkpoint": np.asarray(self.checkpoint or ""),
        }
        if self.jacobians:
            arrays["jacobian"] = np.stack(self.jacobians)
        return arrays

    def write(self, path: Path) -> None:
        """JSON or NPZ by the suffix, written beside ``path`` and renamed into place (complete or absent)."""
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                if path.suffix.lower() == ".json":
                    handle.write(json.dumps(self.to_json()).encode())
                else:
                    np.savez(handle, **self.arrays())
            publish(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)


class MotionPicture:
    """Draws each frame's keypoints and, with a source, the generator's motion panels beside it.

    Panels follow ``animate run``'s default motion: relative to the first frame, with adapted scale.
    """

    def __init__(self, model: AnimationModel, device: torch.device, size: int, trails: int,
                 source: np.ndarray | None, panels: tuple[str, ...]):
        from animate_cli.pipeline import Animator

        if "occlusion" in panels and model.generator.dense_motion_network.occlusion is None:
            raise BadInputError("this model estimates no occlusion map: drop 'occlusion' from --show")
        self.size = size
        self.panels = panels
        self.history: deque[np.ndarray] = deque(maxlen=trails)
        self.animator = Animator(model, device) if source is not None else None
        self.source = None if self.animator is None else self.animator.prepare_source(source)
        self.reference: Keypoints | None = None
        self.scale = 1.0

    def draw(self, images: list[np.ndarray], kp: Keypoints) -> list[np.ndarray]:
        """One picture per (S, S, 3) frame: the frame with its keypoints, then the asked panels."""
        from animate_cli.visualize import draw_keypoints, normalized_to_pixels

        pictures = []
        for index, image in enumerate(images):
            points = normalized_to_pixels(kp.value[index].numpy(), self.size, self.size)
            jacobians = None if kp.jacobian is None else kp.jacobian[index].numpy()
            pictures.append(draw_keypoints(image, points, jacobians, trails=list(self.history)))
            if self.history.maxlen:
                self.history.append(points)
        if self.source is None or not self.panels:
            return pictures
        rows = self._panels(kp)
        return [np.concatenate([picture, *row], axis=1) for picture, row in zip(pictures, rows)]

    @torch.inference_mode()
    def _panels(self, kp: Keypoints) -> list[list[np.ndarray]]:
        from animate_cli.motion import make_coordinate_grid, movement_scale, normalize_keypoints
        from animate_cli.pipeline import tensor_to_images
        from animate_cli.visualize import flow_image, gray_image, masks_image, resize_nearest

        assert self.animator is not None and self.source is not None
        device = self.animator.device
        driving = Keypoints(kp.value, kp.jacobian).to(device)
        if self.reference is None:
            self.reference = driving[0]
            self.scale = movement_scale(self.source.kp, self.reference)
        kp_norm = normalize_keypoints(self.source.kp, driving, self.reference, relative=True, scale=self.scale)
        out = self.animator.model.generator.animate(
            self.source.encoding, self.source.kp, kp_norm, with_deformed="deformed" in self.panels
        )
        motion = out.motion
        height, width = motion.deformation.shape[1:3]
        displacement = (motion.deformation - make_coordinate_grid(height, width, device=device)).cpu().numpy()

        def full(image: np.ndarray) -> np.ndarray:
            return resize_nearest(image, self.size, self.size)

        draw: dict[str, Callable[[int], np.ndarray]] = {
            "masks": lambda b: full(masks_image(motion.mask[b].cpu().numpy())),
            "occlusion": lambda b: full(gray_image(motion.occlusion_map[b, 0].cpu().numpy())),
            "flow": lambda b: full(flow_image(displacement[b], FLOW_SCALE)),
            "deformed": lambda b: tensor_to_images(out.deformed[b : b + 1])[0],
            "result": lambda b: tensor_to_images(out.prediction[b : b + 1])[0],
        }
        return [[draw[name](b) for name in self.panels] for b in range(kp.batch_size)]


def is_image_input(path: Path) -> bool:
    """A still image (one frame), as opposed to a video file or a folder of frames."""
    from animate_cli.media.images import is_image_path

    return path.is_file() and is_image_path(path)


def is_still_output(path: str) -> bool:
    """Whether a visualisation path names one image file (not a video, folder/ or name%05d.png pattern)."""
    from animate_cli.media.images import is_image_path

    return is_image_path(path) and "%" not in Path(path).name and not path.endswith(("/", os.sep))


def check_inspect_inputs(request: InspectRequest) -> None:
    """Fail fast, before any model is loaded: readable input and source, valid and free outputs."""
    from animate_cli.media.images import read_image
    from animate_cli.media.video import probe
    from animate_cli.media.writer import check_output

    unknown = sorted(set(request.panels) - set(PANELS))
    if unknown:
        raise BadInputError(f"unknown panel '{unknown[0]}' for --show (use {', '.join(PANELS)})")
    if request.panels and request.source is None:
        raise BadInputError("--show draws the motion of a source image: add --source IMAGE")
    image_input = is_image_input(request.input)
    if image_input:
        read_image(request.input)
    else:
        probe(request.input)
    if request.source is not None:
        read_image(request.source)
    outputs = []
    if request.data_output is not None:
        if request.data_output.suffix.lower() not in DATA_SUFFIXES:
            raise BadInputError(f"{request.data_output}: keypoints are written as .json or .npz, "
                                f"not '{request.data_output.suffix}'")
        outputs.append(request.data_output)
    visual = request.visual_output
    if visual is not None:
        if not is_still_output(visual):
            check_output(visual, overwrite=request.overwrite)
        elif not image_input:
            raise BadInputError(f"{visual}: a video input is shown as a video, a folder/ or a name%05d.png pattern")
        else:
            outputs.append(Path(visual))
    for output in outputs:
        if not output.resolve().parent.is_dir():
            raise BadInputError(f"{output}: output folder does not exist")
        if output.exists() and not request.overwrite:
            raise BadInputError(f"{output}: exists (use --overwrite)")


def input_frames(path: Path, fit: str, size: int) -> tuple[float, int | None, Iterator[tuple[int, float, np.ndarray]]]:
    """(fps, frame count if known, iterator of (index, time, fitted S x S frame)) for an image, a video or a
    frame folder."""
    from animate_cli.media.images import read_image
    from animate_cli.media.resize import fit_image
    from animate_cli.media.video import DEFAULT_FPS, open_video, probe

    if is_image_input(path):
        return DEFAULT_FPS, 1, iter([(0, 0.0, fit_image(read_image(path), size, fit))])

    def frames() -> Iterator[tuple[int, float, np.ndarray]]:
        with open_video(path) as reader:
            for frame in reader:
                yield frame.index, frame.time, fit_image(frame.image, size, fit)

    info = probe(path)
    return info.fps, info.frame_count, frames()


def _picture_writer(
    visual: str, fps: float, overwrite: bool, stack: contextlib.ExitStack
) -> Callable[[tuple[float, np.ndarray]], None]:
    """Writes (time, picture) items to ``visual``: one image file, or a video opened on ``stack``."""
    from animate_cli.media.images import write_image
    from animate_cli.media.writer import VideoWriter

    if is_still_output(visual):  # the one frame of an image input
        return lambda item: write_image(visual, item[1])
    writer = stack.enter_context(VideoWriter(visual, fps=fps, overwrite=overwrite))
    return lambda item: writer.write(item[1], time=item[0])


def inspect(
    request: InspectRequest,
    model: AnimationModel,
    device: torch.device,
    checkpoint: str | None,
    progress: Callable[[int, int | None], None] | None = None,
) -> InspectResult:
    """Detect the keypoints of every frame of ``request.input``; write the export and the pictures asked for."""
    from animate_cli.media.images import read_image
    from animate_cli.media.resize import fit_image
    from animate_cli.pipeline import BackgroundWriter, batched, prefetch

    started = time.perf_counter()
    size = model.image_size
    model.to(device).eval()
    log = KeypointLog(checkpoint, size)
    fps, total, frames = input_frames(request.input, request.fit, size)
    count = 0
    with contextlib.ExitStack() as stack:
        shown: tuple[MotionPicture, BackgroundWriter] | None = None
        if request.visual_output is not None:
            source = None if request.source is None else fit_image(read_image(request.source), size, request.fit)
            picture = MotionPicture(model, device, size, request.trails, source, request.panels)
            # encoding overlaps the model; the stack waits for it before it finishes (or abandons) the video
            encoder = BackgroundWriter(_picture_writer(request.visual_output, fps, request.overwrite, stack))
            stack.callback(encoder.close)
            shown = picture, encoder
        for batch in batched(prefetch(frames), request.batch_size):
            images = [image for _, _, image in batch]
            kp = detect_keypoints(model, images, device)
            for position, (index, frame_time, _) in enumerate(batch):
                log.add(index, frame_time, kp[position])
            if shown is not None:
                for (_, frame_time, _), drawn in zip(batch, shown[0].draw(images, kp)):
                    shown[1].put((frame_time, drawn))
            count += len(batch)
            if progress is not None:
                progress(count, total)
    if request.data_output is not None:
        log.write(request.data_output)
    return InspectResult(
        frames=count,
        data_output=None if request.data_output is None else str(request.data_output),
        visual_output=request.visual_output,
        seconds=time.perf_counter() - started,
        device=str(device),
        checkpoint=checkpoint,
    )
