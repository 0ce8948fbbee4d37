"""Models and their checkpoint files.

Two formats:

* the published FOMM ``.pth.tar`` (a pickled dict of state dicts), read with ``torch.load(weights_only=True)`` so a
  file whose unpickling needs code is refused, never run; it needs a config (``--config vox-256``);
* the project's own ``.safetensors``: the state dicts under ``kp_detector.`` / ``generator.`` / ``discriminator.``
  plus metadata holding the whole config, the grid-sampling convention and the provenance, so it needs nothing else.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from animate_cli.config import Config, load_config, parse_config
from animate_cli.errors import CheckpointError
from animate_cli.media.common import publish
from animate_cli.networks.discriminator import MultiScaleDiscriminator
from animate_cli.networks.generator import OcclusionAwareGenerator
from animate_cli.networks.keypoint_detector import KeypointDetector

FORMAT_NAME = "animate-cli"
FORMAT_VERSION = "1"
NETWORKS = ("kp_detector", "generator", "discriminator")
# Grid-sampling convention of the published checkpoints: trained on torch 1.0, where grid_sample behaved as
# align_corners=True (FACTS §11). Our own checkpoints record theirs.
PUBLISHED_ALIGN_CORNERS = True
# tensors under this prefix (optimizer moments, step counters) ride along in training checkpoints
TRAINING_STATE_PREFIX = "training_state."


@dataclass
class AnimationModel:
    """A keypoint detector and generator built from one config (and optionally the discriminator)."""

    config: Config
    kp_detector: KeypointDetector
    generator: OcclusionAwareGenerator
    discriminator: MultiScaleDiscriminator | None = None
    align_corners: bool = True
    provenance: dict[str, Any] = field(default_factory=dict)
    path: str | None = None

    @property
    def first_order(self) -> bool:
        return self.config.first_order

    @property
    def image_size(self) -> int:
        return self.config.image_size

    def networks(self) -> dict[str, nn.Module]:
        found = {"kp_detector": self.kp_detector, "generator": self.generator}
        if self.discriminator is not None:
            found["discriminator"] = self.discriminator
        return found

    def set_align_corners(self, align_corners: bool) -> None:
        self.align_corners = align_corners
        self.generator.set_align_corners(align_corners)

    def to(self, device: torch.device | str) -> AnimationModel:
        for network in self.networks().values():
            network.to(device)
        return self

    def eval(self) -> AnimationModel:
        for network in self.networks().values():
            network.eval()
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """All networks' tensors under ``<network>.`` prefixes, the layout of the published key lists."""
        return {f"{name}.{key}": value for name, net in self.networks().items() for key, value in net.state_dict().items()}

    def parameter_counts(self) -> dict[str, int]:
        counts = {name: sum(p.numel() for p in net.parameters()) for name, net in self.networks().items()}
        counts["dense_motion_network"] = sum(p.numel() for p in self.generator.dense_motion_network.parameters())
        return counts


def build_model(config: Config, align_corners: bool = True, with_discriminator: bool = False) -> AnimationModel:
    """Fresh networks (published initialisation) for ``config``."""
    model_params = config.model_params
    common = model_params.common_params
    dense = model_params.generator_params.dense_motion_params
    return AnimationModel(
        config=config,
        kp_detector=KeypointDetector(common, model_params.kp_detector_params),
        generator=OcclusionAwareGenerator(common, model_params.generator_params, align_corners),
        discriminator=(
            MultiScaleDiscriminator(common, model_params.discriminator_params, dense.kp_variance) if with_discriminator else None
        ),
        align_corners=align_corners,
    )


# ------------------------------------------------------------------------------------------------ loading
def _check_state_dict(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], what: str, prefix: str) -> None:
    """One clear error for the first missing key, unexpected key or shape mismatch (keys named in full)."""
    for key, tensor in expected.items():
        if key not in found:
            raise CheckpointError(f"{what}: missing key '{prefix}{key}'")
        if tuple(found[key].shape) != tuple(tensor.shape):
            raise CheckpointError(
                f"{what}: shape mismatch for '{prefix}{key}': checkpoint has {list(found[key].shape)}, "
                f"the config needs {list(tensor.shape)}"
            )
    for key in found:
        if key not in expected:
            raise CheckpointError(f"{what}: unexpected key '{prefix}{key}'")


def load_state(model: AnimationModel, state: dict[str, torch.Tensor], what: str) -> None:
    """Strictly load ``<network>.<key>`` tensors into the model's networks (the discriminator's only if built)."""
    for name, network in model.networks().items():
        prefix = f"{name}."
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if name == "discriminator" and not part:
            continue  # published inference checkpoints may lack it; training starts it fresh
        _check_state_dict(network.state_dict(), part, f"{what} does not fit config '{model.config.name}'", prefix)
        network.load_state_dict(part)
    # a discriminator the caller did not ask for, and saved training state, are not part of the model
    ignored = ("discriminator.", TRAINING_STATE_PREFIX)
    extra = sorted(k for k in state if k.split(".", 1)[0] not in model.networks() and not k.startswith(ignored))
    if extra:
        raise CheckpointError(f"{what} does not fit config '{model.config.name}': unexpected key '{extra[0]}'")


def _strip_module_prefix(state: dict[str, Any]) -> dict[str, Any]:
    """DataParallel wrappers save keys as ``module.x``; the published logger does not, but user-trained files may."""
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def read_published_checkpoint(path: str | Path) -> dict[str, Any]:
    """The dict inside a published ``.pth.tar``, unpickled without ever running code from the file."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()
        detail = next((line for line in first if "GLOBAL" in line or "Unsupported" in line), first[0] if first else "")
        raise CheckpointError(
            f"{path}: refused: unpickling it would need code outside plain tensors ({detail.strip()[:160]}); "
            "only weights are loaded, never code"
        ) from None
    except Exception as error:  # noqa: BLE001 - any failure to parse an untrusted file is "not readable"
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if not path.exists():
            raise CheckpointError(f"{path}: no such file") from None
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or another format?): {message[:160]}") from None
    if not isinstance(data, dict) or not any(k in data for k in ("generator", "kp_detector")):
        raise CheckpointError(f"{path}: not a FOMM checkpoint (no 'generator' or 'kp_detector' entry)")
    return data


def _flatten_published(data: dict[str, Any], path: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for name in NETWORKS:
        if name not in data:
            if name == "discriminator":
                continue
            raise CheckpointError(f"{path}: not a complete FOMM checkpoint (no '{name}' entry)")
        part = data[name]
        if not isinstance(part, dict):
            raise CheckpointError(f"{path}: entry '{name}' is not a state dict")
        for key, value in _strip_module_prefix(part).items():
            if not isinstance(value, torch.Tensor):
                raise CheckpointError(f"{path}: entry '{name}.{key}' is not a tensor")
            state[f"{name}.{key}"] = value
    return state


def read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        if not path.exists():
            raise CheckpointError(f"{path}: no such file") from None
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint (truncated?): {message[:160]}") from None
    return tensors, metadata


def _config_from_metadata(metadata: dict[str, str], path: Path) -> Config:
    if metadata.get("format") != FORMAT_NAME or "config" not in metadata:
        raise CheckpointError(f"{path}: safetensors file without an animate-cli config in its metadata")
    try:
        data = json.loads(metadata["config"])
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: its metadata 'config' is not valid JSON") from None
    return parse_config(data, name=metadata.get("config_name", path.stem))


def is_safetensors(path: str | Path) -> bool:
    return str(path).endswith(".safetensors")


def load_checkpoint(
    path: str | Path,
    config: str | Path | Config | None = None,
    align_corners: bool | None = None,
    device: torch.device | str = "cpu",
    with_discriminator: bool = False,
) -> AnimationModel:
    """Load either format into an :class:`AnimationModel` in eval mode on ``device``.

    ``config`` is needed for ``.pth.tar`` (a preset name, a YAML path or a Config) and, if given for a
    ``.safetensors`` file, overrides nothing: the file's own config is used. ``align_corners`` overrides the
    convention recorded (or, for published files, assumed).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"{path}: permission denied")
    provenance: dict[str, Any] = {}
    if is_safetensors(path):
        state, metadata = read_safetensors(path)
        model_config = _config_from_metadata(metadata, path)
        recorded = metadata.get("align_corners", "true") == "true"
        try:
            provenance = json.loads(metadata.get("provenance", "{}"))
        except json.JSONDecodeError:
            raise CheckpointError(f"{path}: its metadata 'provenance' is not valid JSON") from None
    else:
        if config is None:
            raise CheckpointError(f"{path}: a published .pth.tar checkpoint needs --config (a preset name or a YAML file)")
        model_config = config if isinstance(config, Config) else load_config(config)
        state = _flatten_published(read_published_checkpoint(path), path)
        recorded = PUBLISHED_ALIGN_CORNERS
    has_discriminator = any(k.startswith("discriminator.") for k in state)
    model = build_model(
        model_config,
        align_corners=recorded if align_corners is None else align_corners,
        with_discriminator=with_discriminator and has_discriminator,
    )
    load_state(model, state, str(path))
    model.provenance = provenance
    model.path = str(path)
    return model.to(device).eval()


# ------------------------------------------------------------------------------------------------ saving
def checkpoint_metadata(model: AnimationModel, provenance: dict[str, Any] | None = None) -> dict[str, str]:
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config_name": model.config.name,
        "config": json.dumps(model.config.to_dict()),
        "align_corners": "true" if model.align_corners else "false",
        "provenance": json.dumps(provenance if provenance is not None else model.provenance),
    }


def save_checkpoint(
    model: AnimationModel,
    path: str | Path,
    provenance: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    extra_metadata: dict[str, str] | None = None,
) -> Path:
    """Write the project's ``.safetensors`` format atomically (temporary file, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if extra_tensors:
        tensors.update({k: v.detach().to("cpu").contiguous() for k, v in extra_tensors.items()})
    metadata = checkpoint_metadata(model, provenance)
    if extra_metadata:
        metadata.update(extra_metadata)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(tensors, str(temporary), metadata=metadata)
        publish(temporary, path)  # safetensors writes 0600; a model file is as readable as any other
    finally:
        temporary.unlink(missing_ok=True)
    return path


def convert_checkpoint(source: str | Path, destination: str | Path, config: str | Path | Config) -> AnimationModel:
    """A published ``.pth.tar`` -> the project's ``.safetensors`` (discriminator kept when present)."""
    model = load_checkpoint(source, config=config, with_discriminator=True)
    provenance = {"converted_from": Path(source).name, "format": "published FOMM .pth.tar"}
    save_checkpoint(model, destination, provenance=provenance)
    return model


# ------------------------------------------------------------------------------------------------ finding
# The models this project trains and ships (issue: default models), by the names users type.
SHIPPED_CHECKPOINTS = {"first": "first-order.safetensors", "zeroth": "zeroth-order.safetensors"}
DEFAULT_CHECKPOINT = "first"


def shipped_checkpoint_dir() -> Path:
    """``$ANIMATE_CHECKPOINT_DIR``, else the repository's ``checkpoints/`` folder beside ``src/``."""
    override = os.environ.get("ANIMATE_CHECKPOINT_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "checkpoints"


def resolve_checkpoint(name_or_path: str | Path | None) -> Path:
    """A shipped model's name ('first', 'zeroth'; None = the default) or a path -> an existing file."""
    name = DEFAULT_CHECKPOINT if name_or_path is None else str(name_or_path)
    if name in SHIPPED_CHECKPOINTS:
        path = shipped_checkpoint_dir() / SHIPPED_CHECKPOINTS[name]
        if not path.exists():
            raise CheckpointError(
                f"the shipped '{name}' model is not installed ({path} is missing); pass a checkpoint with "
                "--checkpoint FILE (a .safetensors of this project, or a published FOMM .pth.tar with --config NAME)"
            )
        return path
    path = Path(name)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file (shipped models: {', '.join(SHIPPED_CHECKPOINTS)})")
    return path


def describe_checkpoint(model: AnimationModel) -> dict[str, Any]:
    """What ``animate checkpoints info`` shows, as plain JSON-able values."""
    common = model.config.model_params.common_params
    return {
        "path": model.path,
        "config": model.config.name,
        "order": "first" if common.estimate_jacobian else "zeroth",
        "num_kp": common.num_kp,
        "image_size": model.image_size,
        "align_corners": model.align_corners,
        "parameters": model.parameter_counts(),
        "provenance": model.provenance,
    }


def installed_checkpoints() -> list[dict[str, Any]]:
    """The shipped models by name, with file size, order, resolution and the metrics their provenance records."""
    entries = []
    for name, filename in SHIPPED_CHECKPOINTS.items():
        path = shipped_checkpoint_dir() / filename
        entry: dict[str, Any] = {"name": name, "file": str(path), "installed": path.exists()}
        if path.exists():
            model = load_checkpoint(path)
            entry.update(
                size_mb=path.stat().st_size / 1e6,
                order="first" if model.first_order else "zeroth",
                image_size=model.image_size,
                metrics=model.provenance.get("metrics", {}),
                default=name == DEFAULT_CHECKPOINT,
            )
        entries.append(entry)
    return entries
