"""Training a keypoint detector and generator on a folder of clips (FOMM's objective, FACTS §9).

Each step draws (source, driving) pairs from clips, detects keypoints on both, renders the driving frame from
the source and minimises, summed:

* the multi-scale reconstruction loss (VGG19 perceptual when its weights are found locally, otherwise an L1
  pyramid: see :mod:`animate_cli.training.losses`);
* the equivariance losses on the keypoints (and, first order only, their jacobians) under a random affine +
  thin-plate-spline warp of the driving frame (:mod:`animate_cli.training.transforms`);
* when ``loss_weights.keypoint_separation`` is not 0 (this project's addition, 0 in the published configs), a
  penalty on keypoints that sit on top of each other;
* when ``loss_weights.generator_gan`` is not 0, LSGAN + feature matching against a multi-scale discriminator,
  which then takes its own step on the LSGAN discriminator loss.

Adam (β 0.5, 0.999) per network, learning rates ×0.1 at ``epoch_milestones``; an epoch is
``num_repeats × clips (or identities) / batch_size`` steps. ``RUN_DIR/checkpoint.safetensors`` holds the
weights plus optimizer state and position (resumed automatically; the learning rates then follow the schedule of
the config given to the resumed run), ``RUN_DIR/model.safetensors`` the weights
alone (for ``animate run --checkpoint``), ``RUN_DIR/log.jsonl`` one JSON object per logged step and
``RUN_DIR/panels/`` progress pictures. Several processes via ``torchrun`` train one model with
DistributedDataParallel; ``batch_size`` is then the global batch, split evenly over the processes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import threading
import time
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from animate_cli import __version__
from animate_cli.checkpoint import (
    TRAINING_STATE_PREFIX,
    AnimationModel,
    build_model,
    load_state,
    read_safetensors,
    save_checkpoint,
)
from animate_cli.config import Config, TrainParams, load_config
from animate_cli.errors import BadInputError, CheckpointError
from animate_cli.networks.discriminator import MultiScaleDiscriminator
from animate_cli.structures import Keypoints
from animate_cli.training.dataset import EpochSampler, FramesDataset
from animate_cli.training.distributed import (
    DistributedContext,
    any_across,
    context_from_env,
    init_distributed,
    mean_across,
    shutdown_distributed,
)
from animate_cli.training.losses import (
    ImagePyramid,
    L1PyramidLoss,
    PerceptualPyramidLoss,
    build_reconstruction_loss,
    discriminator_gan_loss,
    equivariance_losses,
    feature_matching_loss,
    generator_gan_loss,
    keypoint_separation_loss,
)
from animate_cli.training.panels import save_panel, training_panel
from animate_cli.training.transforms import RandomTransform

Precision = Literal["auto", "fp32", "bf16"]
CHECKPOINT_NAME = "checkpoint.safetensors"
MODEL_NAME = "model.safetensors"
SNAPSHOT_DIR = "snapshots"  # RUN_DIR/snapshots/model_step_0001500.safetensors, with --keep-every
LOG_NAME = "log.jsonl"
TRAINING_STATE_KEY = "training_state"
ADAM_BETAS = (0.5, 0.999)
LR_GAMMA = 0.1


# --------------------------------------------------------------------------------------------- loss modules
@contextmanager
def frozen(module: nn.Module | None) -> Iterator[None]:
    """Inside, ``module``'s parameters collect no gradients (gradients still flow through it to its inputs)."""
    parameters = [p for p in module.parameters() if p.requires_grad] if module is not None else []
    for parameter in parameters:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in parameters:
            parameter.requires_grad_(True)


class GeneratorFullModel(nn.Module):
    """Keypoint detector + generator and every generator-side loss, the module DDP wraps.

    forward(source, driving: (B, 3, H, W) in [0, 1], transform for the equivariance losses or None, visualize)
    -> (losses: name -> weighted scalar, outputs: ``prediction`` (B, 3, H, W), ``kp_driving`` (B, K, 2) and,
    when ``visualize``, ``kp_source``, ``deformed`` and ``occlusion_map`` (if the model has one)).
    """

    def __init__(
        self,
        model: AnimationModel,
        reconstruction: PerceptualPyramidLoss | L1PyramidLoss,
        train_params: TrainParams,
    ):
        super().__init__()
        self.kp_detector = model.kp_detector
        self.generator = model.generator
        self.reconstruction = reconstruction
        self.scales = tuple(float(s) for s in train_params.scales)
        discriminator = model.discriminator
        disc_scales = discriminator.scales if discriminator is not None else ()
        channels = model.config.model_params.common_params.num_channels
        self.pyramid = ImagePyramid(self.scales + tuple(float(s) for s in disc_scales), channels)
        self.weights = train_params.loss_weights
        # Not registered as a submodule: its parameters belong to the discriminator's optimizer (and its own DDP
        # wrapper); the generator step only back-propagates through it.
        self.__dict__["discriminator"] = discriminator

    def detect(self, frames: torch.Tensor) -> Keypoints:
        """Keypoints in float32 even under bf16 autocast: coordinates and the inverted 2x2 jacobians need more
        than bf16's 8 significant bits, and the detector is a small share of the compute."""
        with torch.autocast(device_type=frames.device.type, enabled=False):
            return self.kp_detector(frames.float())

    def forward(
        self, source: torch.Tensor, driving: torch.Tensor, transform: RandomTransform | None, visualize: bool = False
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        kp_source = self.detect(source)
        kp_driving = self.detect(driving)
        generated = self.generator(source, kp_source, kp_driving, with_deformed=visualize)
        prediction = generated.prediction
        pyramid_real = self.pyramid(driving)
        pyramid_fake = self.pyramid(prediction)
        losses = {
            "reconstruction": self.reconstruction(
                {s: pyramid_fake[s] for s in self.scales}, {s: pyramid_real[s] for s in self.scales}
            )
        }
        if transform is not None:
            kp_transformed = self.detect(transform.transform_frame(driving))
            weights = self.weights
            losses.update(
                equivariance_losses(
                    kp_driving, kp_transformed, transform, weights.equivariance_value, weights.equivariance_jacobian
                )
            )
        if self.weights.keypoint_separation != 0 and kp_driving.value.shape[1] > 1:
            losses["keypoint_separation"] = keypoint_separation_loss(
                torch.cat([kp_source.value, kp_driving.value]), self.weights.keypoint_separation
            )
        if self.weights.generator_gan != 0:
            discriminator: MultiScaleDiscriminator = self.discriminator
            kp = kp_driving.detach()
            fake = discriminator(pyramid_fake, kp)
            losses["generator_gan"] = generator_gan_loss(fake, self.weights.generator_gan)
            if any(w != 0 for w in self.weights.feature_matching):
                with torch.no_grad():  # the real images' features do not depend on the generator
                    real = discriminator(pyramid_real, kp)
                losses["feature_matching"] = feature_matching_loss(real, fake, self.weights.feature_matching)
        outputs = {"prediction": prediction, "kp_driving": kp_driving.value}
        if visualize:
            outputs.update(kp_source=kp_source.value, deformed=generated.deformed)
            if generated.motion.occlusion_map is not None:
                outputs["occlusion_map"] = generated.motion.occlusion_map
        return losses, outputs


class DiscriminatorFullModel(nn.Module):
    """The discriminator and its LSGAN loss, the module DDP wraps for the discriminator step.

    forward(driving (B, 3, H, W), prediction (B, 3, H, W), kp_driving (B, K, 2)) -> weighted scalar loss;
    the prediction and keypoints are detached (the discriminator step trains the discriminator only).
    """

    def __init__(self, discriminator: MultiScaleDiscriminator, channels: int, weight: float):
        super().__init__()
        self.discriminator = discriminator
        self.pyramid = ImagePyramid(discriminator.scales, channels)
        self.weight = weight

    def forward(self, driving: torch.Tensor, prediction: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        kp = Keypoints(value=kp_driving.detach())
        real = self.discriminator(self.pyramid(driving), kp)
        fake = self.discriminator(self.pyramid(prediction.detach()), kp)
        return discriminator_gan_loss(real, fake, self.weight)


# --------------------------------------------------------------------------------------------- the trainer
@dataclass
class StepOutput:
    """losses: name -> value, averaged over micro-batches and processes; outputs: tensors of micro-batch 0
    of this process (``source``, ``driving`` and :class:`GeneratorFullModel`'s outputs) when asked to visualize."""

    losses: dict[str, float]
    outputs: dict[str, torch.Tensor] | None = None


def scheduled_learning_rate(base: float, milestones: Sequence[int], epoch: int) -> float:
    """The published MultiStepLR as a function of the epoch (0-based): base · 0.1^(number of milestones <= epoch).

    A function of the config and the position alone, so a run resumed with other milestones or rates (to train
    longer, say) follows the schedule it is given rather than the one it was started with.
    """
    return base * LR_GAMMA ** bisect_right(sorted(milestones), epoch)


class Trainer:
    """The networks, their optimizers and schedules, and one training step at a time.

    ``accumulate`` splits each (per-process) batch into that many micro-batches whose gradients are summed before
    one update: the same update as the whole batch except that BatchNorm statistics are per micro-batch, exactly
    as they are per process under DDP. Process ``rank`` draws the equivariance warp of its micro-batch ``i``
    from a seed of (seed, step, rank·accumulate + i), so two processes with ``accumulate`` 1 see the same warps
    as one process with ``accumulate`` 2.
    """

    def __init__(
        self,
        config: Config,
        *,
        reconstruction: PerceptualPyramidLoss | L1PyramidLoss,
        device: torch.device | str = "cpu",
        autocast_dtype: torch.dtype | None = None,
        context: DistributedContext = DistributedContext(),
        accumulate: int = 1,
        seed: int = 0,
    ):
        self.config = config
        self.device = torch.device(device)
        self.autocast_dtype = autocast_dtype
        self.context = context
        self.accumulate = accumulate
        self.seed = seed
        train_params = config.train_params
        weights = train_params.loss_weights
        self.adversarial = weights.generator_gan != 0
        self.equivariance = weights.equivariance_value != 0 or (
            weights.equivariance_jacobian != 0 and config.first_order
        )

        # initial weights from ``seed``, the same in every process (DDP also broadcasts rank 0's), without
        # touching the caller's random state
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = build_model(config, align_corners=True, with_discriminator=self.adversarial)
        self.model.to(self.device)
        for network in self.model.networks().values():
            network.train()
        self.generator_full = GeneratorFullModel(self.model, reconstruction, train_params).to(self.device)
        self.discriminator_full = None
        if self.model.discriminator is not None:
            channels = config.model_params.common_params.num_channels
            self.discriminator_full = DiscriminatorFullModel(
                self.model.discriminator, channels, weights.discriminator_gan
            ).to(self.device)
        learning_rates = {
            "generator": train_params.lr_generator,
            "kp_detector": train_params.lr_kp_detector,
            "discriminator": train_params.lr_discriminator,
        }
        self.optimizers = {
            name: torch.optim.Adam(network.parameters(), lr=learning_rates[name], betas=ADAM_BETAS)
            for name, network in self.model.networks().items()
        }
        self.base_learning_rates = learning_rates
        self.epoch_milestones = tuple(train_params.epoch_milestones)
        self.generator_step: nn.Module = self.generator_full
        self.discriminator_step: nn.Module | None = self.discriminator_full
        if context.enabled:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.generator_step = DistributedDataParallel(self.generator_full, device_ids=device_ids)
            if self.discriminator_full is not None:
                self.discriminator_step = DistributedDataParallel(self.discriminator_full, device_ids=device_ids)
        self.step = 0
        self.epoch = 0
        self.epoch_samples = 0  # samples (all processes together) already drawn in the current epoch
        self.apply_schedule()
        self.started = datetime.now(timezone.utc).isoformat(timespec="seconds")

    @property
    def reconstruction_kind(self) -> str:
        return self.generator_full.reconstruction.kind

    def learning_rates(self) -> dict[str, float]:
        return {name: optimizer.param_groups[0]["lr"] for name, optimizer in self.optimizers.items()}

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _sync(self, module: nn.Module, last: bool):
        """Gradients are all-reduced on the last micro-batch only."""
        return module.no_sync() if isinstance(module, DistributedDataParallel) and not last else nullcontext()

    def sample_transform(self, batch: int, micro_batch: int) -> RandomTransform:
        index = self.context.rank * self.accumulate + micro_batch
        seed = int(np.random.SeedSequence([self.seed, self.step, index]).generate_state(1)[0])
        generator = torch.Generator().manual_seed(seed)
        return RandomTransform.sample(batch, self.config.train_params.transform_params, generator, self.device)

    def train_step(self, source: torch.Tensor, driving: torch.Tensor, visualize: bool = False) -> StepOutput:
        """One update of every network on this process's batch: source, driving (B, 3, H, W) in [0, 1]."""
        if source.shape[0] % self.accumulate:
            raise BadInputError(f"a batch of {source.shape[0]} cannot be split into {self.accumulate} micro-batches")
        sources, drivings = source.chunk(self.accumulate), driving.chunk(self.accumulate)
        totals: dict[str, float] = defaultdict(float)
        kept: list[dict[str, torch.Tensor]] = []
        for name in ("generator", "kp_detector"):
            self.optimizers[name].zero_grad(set_to_none=True)
        with frozen(self.model.discriminator):
            for index, (micro_source, micro_driving) in enumerate(zip(sources, drivings)):
                transform = self.sample_transform(micro_source.shape[0], index) if self.equivariance else None
                with self._sync(self.generator_step, index == self.accumulate - 1):
                    with self._autocast():
                        losses, outputs = self.generator_step(
                            micro_source, micro_driving, transform, visualize and index == 0
                        )
                    (sum(losses.values()) / self.accumulate).backward()
                for name, value in losses.items():
                    totals[name] += value.item() / self.accumulate
                kept.append({name: value.detach() for name, value in outputs.items()})
        self.optimizers["generator"].step()
        self.optimizers["kp_detector"].step()

        if self.discriminator_step is not None:
            optimizer = self.optimizers["discriminator"]
            optimizer.zero_grad(set_to_none=True)
            for index, (micro_driving, outputs) in enumerate(zip(drivings, kept)):
                with self._sync(self.discriminator_step, index == self.accumulate - 1):
                    with self._autocast():
                        loss = self.discriminator_step(micro_driving, outputs["prediction"], outputs["kp_driving"])
                    (loss / self.accumulate).backward()
                totals["discriminator_gan"] += loss.item() / self.accumulate
            optimizer.step()
        self.step += 1
        self.epoch_samples += source.shape[0] * self.context.world_size
        losses = mean_across(dict(totals), self.context, self.device)
        visuals = {"source": sources[0], "driving": drivings[0], **kept[0]} if visualize else None
        return StepOutput(losses=losses, outputs=visuals)

    def end_epoch(self) -> None:
        self.epoch += 1
        self.epoch_samples = 0
        self.apply_schedule()

    def apply_schedule(self) -> None:
        """Set every optimizer's learning rate to the config's schedule at the current epoch."""
        for name, optimizer in self.optimizers.items():
            rate = scheduled_learning_rate(self.base_learning_rates[name], self.epoch_milestones, self.epoch)
            for group in optimizer.param_groups:
                group["lr"] = rate

    # ------------------------------------------------------------------------------------- saved state
    def training_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Optimizer tensors as ``training_state.optimizer_<name>.state.<i>.<key>``, the rest as JSON-able data."""
        tensors: dict[str, torch.Tensor] = {}
        optimizers: dict[str, Any] = {}
        for name, optimizer in self.optimizers.items():
            state = optimizer.state_dict()
            scalars: dict[str, Any] = {}
            for index, values in state["state"].items():
                for key, value in values.items():
                    if isinstance(value, torch.Tensor):
                        tensors[f"{TRAINING_STATE_PREFIX}optimizer_{name}.state.{index}.{key}"] = value
                    else:
                        scalars[f"{index}.{key}"] = value
            optimizers[name] = {"param_groups": state["param_groups"], "scalars": scalars}
        meta = {
            "step": self.step,
            "epoch": self.epoch,
            "epoch_samples": self.epoch_samples,
            "seed": self.seed,
            "started": self.started,
            "optimizers": optimizers,
        }
        return tensors, meta

    def load_training_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], what: str) -> None:
        """Inverse of :meth:`training_state`. A network without saved optimizer state (a discriminator added
        to a run that had none) keeps a fresh optimizer."""
        for name, optimizer in self.optimizers.items():
            saved = meta["optimizers"].get(name)
            if saved is None:
                continue
            state: dict[int, dict[str, Any]] = defaultdict(dict)
            prefix = f"{TRAINING_STATE_PREFIX}optimizer_{name}.state."
            for key, value in tensors.items():
                if key.startswith(prefix):
                    index, field_name = key[len(prefix):].split(".", 1)
                    state[int(index)][field_name] = value
            for key, value in saved["scalars"].items():
                index, field_name = key.split(".", 1)
                state[int(index)][field_name] = value
            # JSON turned tuples (Adam's betas) into lists; only "params" is a list in torch's own state dict
            groups = [
                {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}
                for group in saved["param_groups"]
            ]
            try:
                optimizer.load_state_dict({"state": dict(state), "param_groups": groups})
            except (ValueError, KeyError) as error:
                raise CheckpointError(f"{what}: its {name} optimizer state does not fit this model: {error}") from None
        self.step = int(meta["step"])
        self.epoch = int(meta["epoch"])
        self.epoch_samples = int(meta["epoch_samples"])
        self.seed = int(meta["seed"])
        self.started = str(meta["started"])
        self.apply_schedule()

    def save(self, out_dir: Path, provenance: dict[str, Any], snapshot: bool = False) -> tuple[Path, Path]:
        """``checkpoint.safetensors`` (weights + training state) and ``model.safetensors`` (kp detector and
        generator only), each written atomically; with ``snapshot``, the model also as
        ``snapshots/model_step_<step>.safetensors``, which later saves leave alone."""
        tensors, meta = self.training_state()
        checkpoint = save_checkpoint(
            self.model, out_dir / CHECKPOINT_NAME, provenance, extra_tensors=tensors,
            extra_metadata={TRAINING_STATE_KEY: json.dumps(meta)},
        )
        weights = dataclasses.replace(self.model, discriminator=None)
        model = save_checkpoint(weights, out_dir / MODEL_NAME, provenance)
        if snapshot:
            (out_dir / SNAPSHOT_DIR).mkdir(exist_ok=True)
            save_checkpoint(weights, out_dir / SNAPSHOT_DIR / f"model_step_{self.step:07d}.safetensors", provenance)
        return checkpoint, model

    def resume(self, path: Path) -> None:
        """Weights, optimizer moments, schedule position and step count from a training checkpoint."""
        tensors, metadata = read_safetensors(path)
        if TRAINING_STATE_KEY not in metadata:
            raise CheckpointError(
                f"{path}: has no training state (is it a model.safetensors?); move it away to start afresh"
            )
        load_state(self.model, tensors, str(path))
        try:
            meta = json.loads(metadata[TRAINING_STATE_KEY])
        except json.JSONDecodeError:
            raise CheckpointError(f"{path}: its training state is not valid JSON") from None
        self.load_training_state(tensors, meta, str(path))


# --------------------------------------------------------------------------------------------- running
@dataclass(frozen=True)
class RunInfo:
    """What a run is about to do (for the first line of output and the log's first record)."""

    config: str
    data_dir: str
    out_dir: str
    device: str
    precision: str
    world_size: int
    batch_size: int
    accumulate: int
    clips: int
    samples_per_epoch: int
    steps_per_epoch: int
    start_step: int
    final_step: int
    epochs: int
    reconstruction_loss: str
    resumed: bool


@dataclass(frozen=True)
class StepReport:
    step: int
    epoch: int
    losses: dict[str, float]
    lr: dict[str, float]
    seconds: float
    seconds_per_step: float


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    checkpoint: Path
    model: Path
    log: Path
    start_step: int
    steps: int
    epochs: float
    losses: dict[str, float]
    reconstruction_loss: str
    seconds: float
    rank: int = 0
    panels: list[Path] = field(default_factory=list)


class _StopRequests:
    """While training, SIGINT and SIGTERM only set a flag, so a step is never cut in half; the loop then saves a
    checkpoint and :meth:`reraise` hands the signal to the handler that was there before (KeyboardInterrupt for
    Ctrl-C; the CLI's handler turns SIGTERM into its Terminated exception). A second signal acts at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                previous = signal.getsignal(signum)
                if previous is not signal.SIG_IGN:  # respect an ignored signal (nohup)
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002 - signal handler signature
        first = self.signum is None
        self.signum = signum
        if not first:
            self._restore()
            signal.raise_signal(signum)

    def _restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def __exit__(self, *exc_info: Any) -> None:
        self._restore()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def reraise(self) -> None:
        self._restore()
        signal.raise_signal(self.signum if self.signum is not None else signal.SIGTERM)
        raise KeyboardInterrupt  # the previous handler did not stop us (a custom one that returns)


def _ignore_stop_signals(worker_id: int) -> None:  # noqa: ARG001 - DataLoader's worker_init_fn signature
    """Data workers leave Ctrl-C and SIGTERM to the main process, which saves and then shuts them down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def resolve_device(spec: str, context: DistributedContext) -> torch.device:
    """``auto`` (CUDA if available), ``cpu``, ``cuda`` (under torchrun: this process's LOCAL_RANK) or ``cuda:N``."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise BadInputError(f"unknown device '{spec}' (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise BadInputError(f"unsupported device '{spec}' (use auto, cpu, cuda or cuda:N)")
    if not torch.cuda.is_available():
        raise BadInputError(f"device '{spec}' asked for, but CUDA is not available")
    if device.index is None:
        device = torch.device("cuda", context.local_rank)
    if device.index >= torch.cuda.device_count():
        raise BadInputError(f"device '{device}' does not exist ({torch.cuda.device_count()} CUDA devices)")
    torch.cuda.set_device(device)
    return device


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: ``auto`` is bf16 on CUDA and fp32 (no autocast) on CPU."""
    if precision not in ("auto", "fp32", "bf16"):
        raise BadInputError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise BadInputError(f"{name} must be at least 1, got {value}")


def train(
    config: Config | str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    max_steps: int | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    accumulate: int = 1,
    device: str = "auto",
    precision: Precision = "auto",
    workers: int | None = None,
    checkpoint_every: int = 1000,
    keep_every: int | None = None,
    visualize_every: int = 500,
    log_every: int = 10,
    reconstruction_loss: Literal["auto", "vgg19", "l1"] = "auto",
    vgg19_weights: str | Path | None = None,
    seed: int = 0,
    on_start: Callable[[RunInfo], None] | None = None,
    on_step: Callable[[StepReport], None] | None = None,
) -> TrainResult:
    """Train (or resume training) the model of ``config`` on ``data_dir/train``, writing into ``out_dir``.

    ``max_steps`` and ``epochs`` bound the run in total (resumed steps count); ``epochs`` defaults to
    ``train_params.num_epochs``. ``batch_size`` (default ``train_params.batch_size``) is the global batch,
    split over ``torchrun`` processes and then into ``accumulate`` micro-batches. Checkpoints are written every
    ``checkpoint_every`` steps, at the end, and when SIGINT/SIGTERM stop the run (the signal is then re-raised);
    every ``keep_every`` steps the model is also kept in ``RUN_DIR/snapshots/`` (the other files are replaced);
    a panel every ``visualize_every`` steps and at the end; a log record every ``log_every`` steps, the first
    and the last. ``workers`` data-loading processes (default min(4, CPUs); 0 loads in this process).
    ``on_start`` and ``on_step`` are called in the main process (rank 0) only.
    """
    config = config if isinstance(config, Config) else load_config(config)
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    if not data_dir.is_dir():
        raise BadInputError(f"{data_dir}: no such data folder")
    for name, value in (
        ("max_steps", max_steps), ("epochs", epochs), ("batch_size", batch_size), ("accumulate", accumulate),
        ("checkpoint_every", checkpoint_every), ("keep_every", keep_every), ("visualize_every", visualize_every),
        ("log_every", log_every),
    ):
        _positive(name, value)
    if workers is not None and workers < 0:
        raise BadInputError(f"workers must be 0 or more, got {workers}")
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"{out_dir}: exists and is not a folder")
    context = context_from_env()
    torch_device = resolve_device(device, context)
    autocast_dtype = resolve_precision(precision, torch_device)
    joined = init_distributed(context, torch_device)
    try:
        return _run(
            config, data_dir, out_dir, context=context, device=torch_device, autocast_dtype=autocast_dtype,
            max_steps=max_steps, epochs=epochs or config.train_params.num_epochs,
            batch_size=batch_size or config.train_params.batch_size, accumulate=accumulate,
            workers=min(4, os.cpu_count() or 1) if workers is None else workers,
            checkpoint_every=checkpoint_every, keep_every=keep_every, visualize_every=visualize_every,
            log_every=log_every, reconstruction_loss=reconstruction_loss, vgg19_weights=vgg19_weights, seed=seed,
            on_start=on_start, on_step=on_step,
        )
    finally:
        if joined:
            shutdown_distributed(finished=sys.exc_info()[0] is None)


def _run(
    config: Config,
    data_dir: Path,
    out_dir: Path,
    *,
    context: DistributedContext,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    max_steps: int | None,
    epochs: int,
    batch_size: int,
    accumulate: int,
    workers: int,
    checkpoint_every: int,
    keep_every: int | None,
    visualize_every: int,
    log_every: int,
    reconstruction_loss: str,
    vgg19_weights: str | Path | None,
    seed: int,
    on_start: Callable[[RunInfo], None] | None,
    on_step: Callable[[StepReport], None] | None,
) -> TrainResult:
    if batch_size % (context.world_size * accumulate):
        raise BadInputError(
            f"batch size {batch_size} is not divisible by {context.world_size} processes × {accumulate} micro-batches"
        )
    process_batch = batch_size // context.world_size
    dataset_params, train_params = config.dataset_params, config.train_params
    dataset = FramesDataset(
        data_dir, "train", frame_size=(int(dataset_params.frame_shape[0]), int(dataset_params.frame_shape[1])),
        id_sampling=dataset_params.id_sampling, num_repeats=train_params.num_repeats,
        augmentation=dataset_params.augmentation_params, seed=seed,
    )
    sampler = EpochSampler(dataset, context.world_size, context.rank, seed)
    steps_per_epoch = sampler.num_samples // process_batch
    if steps_per_epoch == 0:
        raise BadInputError(
            f"{data_dir}: {len(dataset)} samples per epoch ({len(dataset.entries)} "
            f"{'identities' if dataset_params.id_sampling else 'clips'} × num_repeats {train_params.num_repeats}) "
            f"is less than the batch size {batch_size}"
        )
    reconstruction = build_reconstruction_loss(train_params.loss_weights.perceptual, reconstruction_loss, vgg19_weights)
    trainer = Trainer(
        config, reconstruction=reconstruction, device=device, autocast_dtype=autocast_dtype, context=context,
        accumulate=accumulate, seed=seed,
    )
    checkpoint_path = out_dir / CHECKPOINT_NAME
    resumed = checkpoint_path.exists()
    if resumed:
        trainer.resume(checkpoint_path)
        dataset.seed = sampler.seed = trainer.seed  # the resumed run keeps drawing the interrupted run's samples
    final_step = min(epochs * steps_per_epoch, max_steps or math.inf)
    start_step = trainer.step
    info = RunInfo(
        config=config.name, data_dir=str(data_dir), out_dir=str(out_dir), device=str(device),
        precision="bf16" if autocast_dtype is not None else "fp32", world_size=context.world_size,
        batch_size=batch_size, accumulate=accumulate, clips=dataset.num_clips, samples_per_epoch=len(dataset),
        steps_per_epoch=steps_per_epoch, start_step=start_step, final_step=int(final_step), epochs=epochs,
        reconstruction_loss=trainer.reconstruction_kind, resumed=resumed,
    )
    log_path = out_dir / LOG_NAME
    writer = _RunFiles(out_dir, log_path) if context.is_main else None
    if writer is not None:
        writer.log({"event": "start", **dataclasses.asdict(info), "started": trainer.started})
    if on_start is not None and context.is_main:
        on_start(info)

    def provenance() -> dict[str, Any]:
        return {
            "data": str(data_dir.resolve()),
            "steps": trainer.step,
            "epochs": round(trainer.epoch + trainer.epoch_samples / (steps_per_epoch * batch_size), 4),
            "config": config.name,
            "reconstruction_loss": trainer.reconstruction_kind,
            "started": trainer.started,
            "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "batch_size": batch_size,
            "world_size": context.world_size,
            "precision": info.precision,
            "seed": trainer.seed,
            "animate_cli": __version__,
        }

    def save(snapshot: bool = False) -> None:
        if writer is not None:
            trainer.save(out_dir, provenance(), snapshot)

    loader = DataLoader(
        dataset, batch_size=process_batch, sampler=sampler, num_workers=workers, drop_last=True,
        pin_memory=device.type == "cuda", worker_init_fn=_ignore_stop_signals if workers else None,
        persistent_workers=workers > 0,
    )
    begin = time.perf_counter()
    last_time, last_step = begin, trainer.step
    losses: dict[str, float] = {}
    saved_step = trainer.step
    with _StopRequests() as stop:
        while trainer.step < final_step:
            sampler.set_epoch(trainer.epoch)
            sampler.set_start(trainer.epoch_samples // context.world_size)
            if len(sampler) < process_batch:  # resumed with a larger batch than the rest of the epoch holds
                trainer.end_epoch()
                continue
            for batch in loader:
                step = trainer.step + 1
                visualize = writer is not None and (step % visualize_every == 0 or step == final_step)
                result = trainer.train_step(
                    batch["source"].to(device, non_blocking=True), batch["driving"].to(device, non_blocking=True),
                    visualize=visualize,
                )
                losses = result.losses
                epoch_done = trainer.epoch_samples // context.world_size + process_batch > sampler.num_samples
                if epoch_done:
                    trainer.end_epoch()
                now = time.perf_counter()
                report = StepReport(
                    step=trainer.step, epoch=trainer.epoch, losses=losses, lr=trainer.learning_rates(),
                    seconds=now - begin, seconds_per_step=(now - last_time) / max(trainer.step - last_step, 1),
                )
                last_time, last_step = now, trainer.step
                if writer is not None:
                    if step % log_every == 0 or step == start_step + 1 or step == final_step:
                        writer.log({"event": "step", **dataclasses.asdict(report)})
                    if result.outputs is not None:
                        writer.panel(step, result.outputs)
                    snapshot = keep_every is not None and step % keep_every == 0
                    if step % checkpoint_every == 0 or snapshot:
                        save(snapshot)
                        saved_step = step
                if on_step is not None and context.is_main:
                    on_step(report)
                if any_across(stop.requested, context, device):
                    if saved_step != trainer.step:
                        save()
                    stop.reraise()
                if epoch_done or trainer.step >= final_step:
                    break
        if saved_step != trainer.step or not checkpoint_path.exists():
            save()
    if writer is not None:
        writer.log({"event": "end", "step": trainer.step, "seconds": time.perf_counter() - begin})
    return TrainResult(
        out_dir=out_dir, checkpoint=checkpoint_path, model=out_dir / MODEL_NAME, log=log_path,
        start_step=start_step, steps=trainer.step,
        epochs=round(trainer.epoch + trainer.epoch_samples / (steps_per_epoch * batch_size), 4), losses=losses,
        reconstruction_loss=trainer.reconstruction_kind, seconds=time.perf_counter() - begin, rank=context.rank,
        panels=writer.panels if writer is not None else [],
    )


class _RunFiles:
    """What rank 0 writes besides checkpoints: the JSON-lines log and the panels."""

    def __init__(self, out_dir: Path, log_path: Path):
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.log_path = log_path
        self.panels: list[Path] = []

    def log(self, record: dict[str, Any]) -> None:
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def panel(self, step: int, outputs: dict[str, torch.Tensor]) -> None:
        image = training_panel(
            outputs["source"], outputs["driving"], outputs["kp_source"], outputs["kp_driving"], outputs["deformed"],
            outputs["prediction"], outputs.get("occlusion_map"),
        )
        self.panels.append(save_panel(self.out_dir / "panels" / f"step_{step:07d}.png", image))
