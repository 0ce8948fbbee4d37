"""Typed configs in the published FOMM YAML layout.

One frozen dataclass per section; :func:`parse_config` is the single place a YAML mapping becomes a
:class:`Config`, and it rejects unknown keys and wrong types with the key's dotted path in the message.
The eight published configs ship as presets (``vox-256``, ``taichi-256``, ...) under ``animate_cli/configs``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from animate_cli.errors import ConfigError

PRESET_DIR = Path(__file__).parent / "configs"


# ---------------------------------------------------------------------------------------------- model_params
@dataclass(frozen=True)
class CommonParams:
    num_kp: int = 10
    num_channels: int = 3
    estimate_jacobian: bool = True


@dataclass(frozen=True)
class KeypointDetectorParams:
    temperature: float = 0.1
    block_expansion: int = 32
    max_features: int = 1024
    scale_factor: float = 0.25
    num_blocks: int = 5
    single_jacobian_map: bool = False
    pad: int = 0


@dataclass(frozen=True)
class DenseMotionParams:
    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25
    kp_variance: float = 0.01


@dataclass(frozen=True)
class GeneratorParams:
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 6
    estimate_occlusion_map: bool = False
    dense_motion_params: DenseMotionParams | None = None
    # not in the published configs (false there): Monkey-Net's U-Net skips, see networks.generator
    skip_connections: bool = False


@dataclass(frozen=True)
class DiscriminatorParams:
    scales: tuple[float, ...] = (1.0,)
    block_expansion: int = 32
    max_features: int = 512
    num_blocks: int = 4
    sn: bool = False
    use_kp: bool = False


@dataclass(frozen=True)
class ModelParams:
    common_params: CommonParams = field(default_factory=CommonParams)
    kp_detector_params: KeypointDetectorParams = field(default_factory=KeypointDetectorParams)
    generator_params: GeneratorParams = field(default_factory=GeneratorParams)
    discriminator_params: DiscriminatorParams = field(default_factory=DiscriminatorParams)


# ---------------------------------------------------------------------------------------------- train_params
@dataclass(frozen=True)
class TransformParams:
    sigma_affine: float = 0.05
    sigma_tps: float = 0.005
    points_tps: int = 5


@dataclass(frozen=True)
class LossWeights:
    generator_gan: float = 0.0
    discriminator_gan: float = 1.0
    feature_matching: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0)
    perceptual: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0, 10.0)
    equivariance_value: float = 10.0
    equivariance_jacobian: float = 10.0
    # not in the published configs (0 there): pushes keypoints apart, see training.losses.keypoint_separation_loss
    keypoint_separation: float = 0.0


@dataclass(frozen=True)
class TrainParams:
    num_epochs: int = 100
    num_repeats: int = 1
    epoch_milestones: tuple[int, ...] = ()
    lr_generator: float = 2e-4
    lr_discriminator: float = 2e-4
    lr_kp_detector: float = 2e-4
    batch_size: int = 8
    scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
    checkpoint_freq: int = 50
    transform_params: TransformParams = field(default_factory=TransformParams)
    loss_weights: LossWeights = field(default_factory=LossWeights)


# -------------------------------------------------------------------------------------------- dataset_params
@dataclass(frozen=True)
class FlipParams:
    horizontal_flip: bool = False
    time_flip: bool = False


@dataclass(frozen=True)
class JitterParams:
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0


@dataclass(frozen=True)
class CropParams:
    size: tuple[int, ...] = (256, 256)


@dataclass(frozen=True)
class ResizeParams:
    ratio: tuple[float, ...] = (1.0, 1.0)


@dataclass(frozen=True)
class AugmentationParams:
    flip_param: FlipParams | None = None
    jitter_param: JitterParams | None = None
    crop_param: CropParams | None = None
    resize_param: ResizeParams | None = None


@dataclass(frozen=True)
class DatasetParams:
    root_dir: str = "data"
    frame_shape: tuple[int, ...] = (256, 256, 3)
    id_sampling: bool = False
    pairs_list: str | None = None
    augmentation_params: AugmentationParams = field(default_factory=AugmentationParams)


# ----------------------------------------------------------------------------------------- evaluation, demo
@dataclass(frozen=True)
class ReconstructionParams:
    num_videos: int = 1000
    format: str = ".mp4"


@dataclass(frozen=True)
class NormalizationParams:
    adapt_movement_scale: bool = False
    use_relative_movement: bool = True
    use_relative_jacobian: bool = True


@dataclass(frozen=True)
class AnimateParams:
    num_pairs: int = 50
    format: str = ".mp4"
    normalization_params: NormalizationParams = field(default_factory=NormalizationParams)


@dataclass(frozen=True)
class VisualizerParams:
    kp_size: int = 5
    draw_border: bool = True
    colormap: str = "gist_rainbow"


@dataclass(frozen=True)
class Config:
    """A whole config file. ``name`` is the preset name or the file's stem (not a YAML key)."""

    model_params: ModelParams = field(default_factory=ModelParams)
    train_params: TrainParams = field(default_factory=TrainParams)
    dataset_params: DatasetParams = field(default_factory=DatasetParams)
    reconstruction_params: ReconstructionParams = field(default_factory=ReconstructionParams)
    animate_params: AnimateParams = field(default_factory=AnimateParams)
    visualizer_params: VisualizerParams = field(default_factory=VisualizerParams)
    name: str = field(default="custom", compare=False)

    @property
    def first_order(self) -> bool:
        return self.model_params.common_params.estimate_jacobian

    @property
    def image_size(self) -> int:
        return int(self.dataset_params.frame_shape[0])

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping this config came from (defaults filled in); ``parse_config`` inverts it."""
        data = _to_plain(self)
        del data["name"]
        return data

    def replace(self, **sections: Any) -> Config:
        return dataclasses.replace(self, **sections)


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_to_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------- parsing
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert lists to tuples, mappings to dataclasses."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], path)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{path}' must be a mapping, got {type(value).__name__}")
        return _build(tp, value, path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key '{path}' must be a list, got {type(value).__name__}")
        item_type = typing.get_args(tp)[0]
        return tuple(_convert(v, item_type, f"{path}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key '{path}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key '{path}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key '{path}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key '{path}' must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {path}")  # a bug in the dataclasses above


def _build(cls: type, data: dict, path: str) -> Any:
    hints = typing.get_type_hints(cls)
    # Config.name is bookkeeping (which preset or file), not a YAML key
    known = {f.name for f in dataclasses.fields(cls)} - ({"name"} if cls is Config else set())
    kwargs = {}
    for key, value in data.items():
        dotted = f"{path}.{key}" if path else str(key)
        if key not in known:
            raise ConfigError(f"unknown config key '{dotted}'")
        kwargs[key] = _convert(value, hints[key], dotted)
    return cls(**kwargs)


def parse_config(data: Any, name: str = "custom") -> Config:
    """Build a :class:`Config` from a YAML mapping, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"config '{name}' must be a YAML mapping at the top level")
    config = _build(Config, data, "")
    config = dataclasses.replace(config, name=name)
    _validate(config)
    return config


def _validate(config: Config) -> None:
    model = config.model_params
    if model.common_params.num_kp < 1:
        raise ConfigError("config key 'model_params.common_params.num_kp' must be at least 1")
    if model.generator_params.dense_motion_params is None:
        raise ConfigError("config key 'model_params.generator_params.dense_motion_params' is required")
    for section, value in (
        ("kp_detector_params.scale_factor", model.kp_detector_params.scale_factor),
        ("generator_params.dense_motion_params.scale_factor", model.generator_params.dense_motion_params.scale_factor),
    ):
        if not 0 < value <= 1:
            raise ConfigError(f"config key 'model_params.{section}' must be in (0, 1], got {value}")


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_config(name_or_path: str | Path) -> Config:
    """A preset by name (``vox-256``) or a YAML file by path."""
    path = Path(name_or_path)
    if str(name_or_path) in preset_names():
        path = PRESET_DIR / f"{name_or_path}.yaml"
    elif not path.exists():
        raise ConfigError(
            f"config '{name_or_path}' is neither a file nor a preset (presets: {', '.join(preset_names())})"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config {path}: {error}") from None
    return config_from_yaml(text, name=path.stem)


def config_from_yaml(text: str, name: str = "custom") -> Config:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"config '{name}' is not valid YAML: {str(error).splitlines()[0]}") from None
    return parse_config(data, name=name)


def config_to_yaml(config: Config) -> str:
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)
