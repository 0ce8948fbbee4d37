"""Streaming animation: decoded frames -> keypoints -> dense motion -> generator -> frames, batch by batch.

Nothing here holds a whole video: frames arrive from an iterator, are processed ``batch_size`` at a time, and
leave as an iterator. What depends only on a source image (its keypoints, its encoder features, its downsampled
copy for the dense motion network) is computed once per source in :meth:`Animator.prepare_source`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from animate_cli.checkpoint import AnimationModel
from animate_cli.errors import BadInputError
from animate_cli.motion import movement_scale, normalize_keypoints
from animate_cli.structures import Keypoints, SourceEncoding

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
PRECISION_CHOICES = ("auto", *PRECISIONS)
T = TypeVar("T")


@dataclass(frozen=True)
class MotionOptions:
    """How driving keypoints become source keypoints (FOMM demo semantics).

    relative: move the source keypoints by the driving motion since the reference frame (the default);
    otherwise use the driving keypoints as they are (absolute mode copies the driver's shape).
    adapt_scale: scale that motion by sqrt(hull area of the source keypoints / hull area at the reference frame).
    """

    relative: bool = True
    adapt_scale: bool = True


@dataclass(frozen=True)
class PreparedSource:
    """A source image ready to animate. image: (1, 3, S, S) on the model's device; kp: batch 1."""

    image: torch.Tensor
    kp: Keypoints
    encoding: SourceEncoding


def resolve_device(name: str) -> torch.device:
    """'auto' (CUDA when present, else CPU), 'cpu', 'cuda', 'cuda:N' or 'mps', checked for availability."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BadInputError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInputError(f"device '{name}' asked for, but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BadInputError(f"device '{name}' does not exist ({torch.cuda.device_count()} CUDA devices)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise BadInputError("device 'mps' asked for, but MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise BadInputError(f"unsupported device '{name}' (use auto, cpu, cuda, cuda:N or mps)")
    return device


def has_native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bf16 convolutions in hardware: CUDA GPUs from Ampere (compute capability 8) on, CPUs
    with AVX512-BF16 or AMX. Elsewhere oneDNN and cuDNN emulate bf16, slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    if device.type == "cpu":
        # private but long-standing probes of torch.cpu; an older torch without them gets fp32
        probes = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
        return any(probe is not None and probe() for probe in probes)
    return False


def choose_precision(precision: str, device: torch.device) -> str:
    """The compute precision for ``precision`` on ``device``: fp32, fp16 or bf16 as given, and for ``auto`` bf16
    where the hardware has it natively, else fp32.

    bf16 autocast keeps the outputs within 1/255 on average of fp32 (bench/RESULTS.md; keypoints stay float32) and
    runs vox-256 1.8x faster than fp32 on 2 AVX512-BF16 cores, so ``auto`` is what `animate run` uses by default.
    """
    if precision not in PRECISION_CHOICES:
        raise BadInputError(f"unknown precision '{precision}' (use {', '.join(PRECISION_CHOICES)})")
    if precision == "fp16" and device.type == "cpu":
        raise BadInputError("fp16 needs a GPU; on the CPU use bf16 or fp32")
    if precision == "auto":
        return "bf16" if has_native_bf16(device) else "fp32"
    return precision


def configure_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads for the model (None keeps torch's default: one per core)."""
    if threads is not None:
        torch.set_num_threads(threads)


def image_to_tensor(images: np.ndarray | list[np.ndarray], device: torch.device) -> torch.Tensor:
    """uint8 (H, W, 3) or a list of them -> float (B, 3, H, W) in [0, 1] on ``device``.

    The uint8 pixels travel (4x less than floats), from pinned memory so the copy to a GPU does not block.
    """
    array = np.stack(images) if isinstance(images, list) else images[None].copy()  # a writable array for torch
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    tensor = tensor.to(device, non_blocking=True)
    return tensor.permute(0, 3, 1, 2).float().div_(255)


def tensor_to_images(batch: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [0, 1] -> uint8 (B, H, W, 3), rounding half to even as the published demo does."""
    scaled = batch.detach().float().clamp_(0, 1).mul_(255).round_()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


class Animator:
    """Runs one model over frame batches for one or several prepared sources."""

    def __init__(self, model: AnimationModel, device: torch.device, precision: str = "fp32", compile: bool = False):
        """``precision``: fp32, fp16, bf16 or auto (see :func:`choose_precision`). ``compile`` runs the networks
        through ``torch.compile`` with static shapes (batches are padded to a constant size), trading a one-time
        compilation for faster frames on long videos."""
        self.precision = choose_precision(precision, device)  # fp32, fp16 or bf16, never auto
        self.model = model.to(device).eval()
        self.device = device
        self.compiled = compile
        # NHWC: oneDNN's convolutions run 15-20 % faster on it here (bench/RESULTS.md), cuDNN's tensor-core kernels
        # want it, and frames arrive NHWC anyway (``image_to_tensor`` permutes an (B, H, W, 3) array)
        for network in (self.model.kp_detector, self.model.generator):
            network.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # autotuning pays off over a video's many equal batches
        self._detect = self.model.kp_detector
        self._render = _render_prediction
        if compile:
            self._detect = torch.compile(self.model.kp_detector, dynamic=False)
            self._render = torch.compile(_render_prediction, dynamic=False)

    @property
    def size(self) -> int:
        return self.model.image_size

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision])

    @torch.inference_mode()
    def keypoints(self, frames: list[np.ndarray]) -> Keypoints:
        """Keypoints of (S, S, 3) uint8 frames, in float32 whatever the precision (they feed a convex hull)."""
        with self._autocast():
            kp = self._detect(image_to_tensor(frames, self.device))
        return Keypoints(kp.value.float(), None if kp.jacobian is None else kp.jacobian.float())

    @torch.inference_mode()
    def prepare_source(self, image: np.ndarray) -> PreparedSource:
        tensor = image_to_tensor(image, self.device)
        with self._autocast():
            encoding = self.model.generator.encode_source(tensor)
        return PreparedSource(image=tensor, kp=self.keypoints([image]), encoding=encoding)

    @torch.inference_mode()
    def render(self, source: PreparedSource, kp_driving: Keypoints) -> np.ndarray:
        """Frames (B, S, S, 3) uint8 of ``source`` posed by ``kp_driving`` (already normalised)."""
        with self._autocast():
            prediction = self._render(self.model.generator, source.encoding, source.kp, kp_driving)
        return tensor_to_images(prediction)

    def animate(
        self,
        sources: list[PreparedSource],
        frames: Iterable[tuple[T, np.ndarray]],
        reference: np.ndarray | None,
        options: MotionOptions,
        batch_size: int = 4,
    ) -> Iterator[tuple[T, list[np.ndarray]]]:
        """For each (tag, driving frame (S, S, 3) uint8), yield (tag, one (S, S, 3) uint8 result per source).

        The tag (a timestamp, the driving frame itself, ...) rides along untouched. ``reference`` is the driving
        frame relative motion is measured from (it maps onto the source pose); None takes the first frame.
        """
        kp_reference = None if reference is None else self.keypoints([reference])
        scales: list[float] = []
        for batch in batched(frames, batch_size):
            images = [image for _, image in batch]
            if self.compiled and len(images) < batch_size:
                images += [images[-1]] * (batch_size - len(images))  # keep shapes static: no recompilation
            kp_batch = self.keypoints(images)
            if kp_reference is None:
                kp_reference = kp_batch[0]
            if not scales:
                scales = [movement_scale(s.kp, kp_reference) if options.adapt_scale else 1.0 for s in sources]
            results = []
            for source, scale in zip(sources, scales):
                kp_norm = normalize_keypoints(source.kp, kp_batch, kp_reference, relative=options.relative, scale=scale)
                results.append(self.render(source, kp_norm))
            for index, (tag, _) in enumerate(batch):
                yield tag, [rendered[index] for rendered in results]


def _render_prediction(
    generator: torch.nn.Module, encoding: SourceEncoding, kp_source: Keypoints, kp_driving: Keypoints
) -> torch.Tensor:
    """The generator's prediction alone: a plain function so ``torch.compile`` sees tensors in and out."""
    return generator.animate(encoding, kp_source, kp_driving).prediction


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


_DONE = object()


def prefetch(items: Iterable[T], depth: int = 16) -> Iterator[T]:
    """Run ``items`` in a background thread, ``depth`` items ahead, so decoding overlaps the model.

    Exceptions in the producer are re-raised in the consumer; closing the consumer stops the producer.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                buffer.put((item, None))
        except BaseException as error:  # noqa: BLE001 - handed to the consumer thread
            buffer.put((_DONE, error))
            return
        buffer.put((_DONE, None))

    thread = threading.Thread(target=produce, daemon=True, name="prefetch")
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):  # unblock a producer waiting on a full queue
            while True:
                buffer.get_nowait()
        thread.join(timeout=5)


class BackgroundWriter:
    """Calls ``write(item)`` in a worker thread, so encoding overlaps the model; errors surface on the next call."""

    def __init__(self, write: Callable[[T], None], depth: int = 16):
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="encode")
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is None:
                try:
                    self._write(item)
                except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                    self._error = error

    def put(self, item: T) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self) -> None:
        """Wait for every queued item to be written; re-raise the first write error."""
        self._queue.put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error
