"""Fixtures shared across the suite: the reference material in ../shared and tiny random-weight models."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"
PARITY = REFERENCE / "parity"

TINY_CONFIG_YAML = """
model_params:
  common_params: {num_kp: 5, num_channels: 3, estimate_jacobian: true}
  kp_detector_params: {temperature: 0.1, block_expansion: 8, max_features: 32, scale_factor: 0.25, num_blocks: 3}
  generator_params:
    block_expansion: 8
    max_features: 32
    num_down_blocks: 2
    num_bottleneck_blocks: 1
    estimate_occlusion_map: true
    dense_motion_params: {block_expansion: 8, max_features: 32, num_blocks: 3, scale_factor: 0.25}
  discriminator_params: {scales: [1], block_expansion: 8, max_features: 32, num_blocks: 4, sn: true}
dataset_params:
  frame_shape: [64, 64, 3]
"""


def reference_or_skip(path: Path) -> Path:
    """The shared reference material sits beside the repository; a bare clone without it skips these tests."""
    if not path.exists():
        pytest.skip(f"reference material not found at {path}")
    return path


@pytest.fixture
def tiny_config():
    from animate_cli.config import config_from_yaml

    return config_from_yaml(TINY_CONFIG_YAML, name="tiny")


def perturbed_model(config, seed: int = 0, align_corners: bool = True):
    """A model whose weights and batch-norm statistics are random but sane, so outputs depend on them."""
    import torch

    from animate_cli.checkpoint import build_model

    model = build_model(config, align_corners=align_corners)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point() or name.endswith("down.weight"):
                continue  # keep the anti-aliasing kernels: they are fixed, not learned
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            else:
                tensor.add_(0.05 * torch.randn(tensor.shape, generator=generator))
    return model.eval()


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_config):
    """A tiny first-order model saved in the project's format."""
    from animate_cli.checkpoint import save_checkpoint

    path = tmp_path / "tiny.safetensors"
    save_checkpoint(perturbed_model(tiny_config), path, provenance={"purpose": "tests"})
    return path
