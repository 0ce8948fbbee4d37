"""A tiny training config and tiny clip folders, written by the tests (shared by tests/training and tests/cli)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def config_dict(
    generator_gan: float = 0,
    first_order: bool = True,
    lr: float = 2e-4,
    sn: bool = False,
    id_sampling: bool = False,
    keypoint_separation: float = 0,
    milestones: tuple[int, ...] = (1,),
) -> dict:
    """The suite's tiny networks (``tests.conftest.TINY_CONFIG_YAML``) with a training set-up around them."""
    import yaml

    from tests.conftest import TINY_CONFIG_YAML

    data = yaml.safe_load(TINY_CONFIG_YAML)
    model = data["model_params"]
    model["common_params"]["estimate_jacobian"] = first_order
    model["discriminator_params"].update(sn=sn, use_kp=True)
    data["dataset_params"].update(
        id_sampling=id_sampling,
        augmentation_params={
            "flip_param": {"horizontal_flip": True, "time_flip": True},
            "jitter_param": {"brightness": 0.1, "contrast": 0.1, "saturation": 0.1, "hue": 0.1},
        },
    )
    data["train_params"] = {
        "num_epochs": 100, "num_repeats": 2, "epoch_milestones": list(milestones),
        "lr_generator": lr, "lr_discriminator": lr, "lr_kp_detector": lr,
        "batch_size": 2, "scales": [1, 0.5], "checkpoint_freq": 1,
        "transform_params": {"sigma_affine": 0.05, "sigma_tps": 0.005, "points_tps": 5},
        "loss_weights": {
            "generator_gan": generator_gan, "discriminator_gan": 1, "feature_matching": [10, 10, 10, 10],
            "perceptual": [10, 10, 10, 10, 10], "equivariance_value": 10, "equivariance_jacobian": 10,
            "keypoint_separation": keypoint_separation,
        },
    }
    return data


def config_yaml(**options) -> str:
    import yaml

    return yaml.safe_dump(config_dict(**options), sort_keys=False)


def write_config(folder: Path, name: str = "tiny", **options) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(config_yaml(**options), encoding="utf-8")
    return path


def load_tiny_config(**options):
    from animate_cli.config import config_from_yaml

    return config_from_yaml(config_yaml(**options), name="tiny")


def square_clip(frames: int, size: int = 64, seed: int = 0) -> np.ndarray:
    """(T, size, size, 3) uint8: a coloured square moving diagonally over fixed noise."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    colour = rng.integers(64, 256, size=3, dtype=np.uint8)
    side = size // 4
    clip = np.repeat(background[None], frames, axis=0)
    for t in range(frames):
        offset = 4 + t * (size - side - 8) // max(frames - 1, 1)
        clip[t, offset : offset + side, offset : offset + side] = colour
    return clip


def write_frame_folder(folder: Path, clip: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(clip):
        Image.fromarray(frame).save(folder / f"{index:06d}.png")
    return folder


def make_dataset(root: Path, clips: int = 3, frames: int = 5, corrupt: bool = False, prefix: str = "clip") -> Path:
    """root/train/<prefix>_0000i/*.png (+ .npz beside each, to be ignored), optionally one corrupt clip folder."""
    for index in range(clips):
        folder = write_frame_folder(root / "train" / f"{prefix}_{index:05d}", square_clip(frames, seed=index))
        folder.with_suffix(".npz").write_bytes(b"not a clip")
    if corrupt:
        bad = root / "train" / "broken_clip"
        bad.mkdir(parents=True)
        (bad / "000000.png").write_text("this is text, not a PNG")
    return root
