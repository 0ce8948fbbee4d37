"""Reconstruction, equivariance and GAN losses; VGG19 from a local weights file."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from animate_cli.config import TransformParams
from animate_cli.errors import BadInputError, CheckpointError
from animate_cli.structures import Keypoints
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
from animate_cli.training.transforms import RandomTransform
from animate_cli.training.vgg import ENV_VARIABLE, VGG19Features, find_vgg19_weights, load_vgg19


@pytest.fixture
def no_default_vgg(tmp_path, monkeypatch):
    """No VGG19 weights anywhere this machine's user might keep them."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(ENV_VARIABLE, raising=False)


def random_vgg19_file(folder, suffix: str):
    """A random state dict in torchvision's vgg19 layout (features only, plus a classifier key to be ignored)."""
    generator = torch.Generator().manual_seed(0)
    shapes = {key: value.shape for key, value in VGG19Features().state_dict().items()}
    state = {key: 0.05 * torch.randn(shape, generator=generator) for key, shape in shapes.items()}
    # torchvision's file also has features.30 .. 34 and the classifier; the loader ignores them
    state["features.34.weight"] = torch.zeros(512, 512, 3, 3)
    state["classifier.6.bias"] = torch.zeros(1000)
    path = folder / f"vgg19{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file(state, str(path))
    return path, state


def test_pyramid_levels_use_the_published_downsampling():
    pyramid = ImagePyramid([1, 0.5, 0.25, 0.5], channels=3)
    levels = pyramid(torch.rand(2, 3, 64, 64))
    assert list(levels) == [1.0, 0.5, 0.25]
    assert [tuple(v.shape[2:]) for v in levels.values()] == [(64, 64), (32, 32), (16, 16)]
    assert set(pyramid.state_dict()) == {"downs.0-5.weight", "downs.0-25.weight", "downs.1.weight"}


def test_l1_pyramid_of_identical_images_is_zero_and_positive_otherwise():
    pyramid = ImagePyramid([1, 0.5], 3)
    image = torch.rand(2, 3, 32, 32)
    loss = L1PyramidLoss(10)
    assert loss(pyramid(image), pyramid(image)).item() == 0
    other = image.clone()
    other[:, :, :8] = 0
    value = loss(pyramid(other), pyramid(image))
    expected = 10 * sum((a - b).abs().mean() for a, b in zip(pyramid(other).values(), pyramid(image).values()))
    assert value.item() > 0 and torch.allclose(value, expected)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_vgg19_weights_load_from_a_local_file(tmp_path, suffix):
    path, state = random_vgg19_file(tmp_path, suffix)
    vgg = load_vgg19(path)
    loaded = vgg.state_dict()
    assert all(torch.equal(loaded[key], state[key]) for key in loaded)
    outputs = vgg(torch.rand(1, 3, 32, 32))
    assert [tuple(o.shape[1:]) for o in outputs] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
    assert not any(p.requires_grad for p in vgg.parameters()) and not vgg.train().training

    loss = PerceptualPyramidLoss(vgg, [10] * 5)
    pyramid = ImagePyramid([1, 0.5], 3)
    image = torch.rand(1, 3, 32, 32)
    assert loss(pyramid(image), pyramid(image)).item() == 0
    prediction = torch.rand(1, 3, 32, 32, requires_grad=True)
    value = loss(pyramid(prediction), pyramid(image))
    value.backward()
    assert value.item() > 0 and prediction.grad.abs().sum() > 0


def test_vgg19_file_of_the_wrong_shape_is_refused(tmp_path):
    path = tmp_path / "vgg19.safetensors"
    save_file({"features.0.weight": torch.zeros(3, 3, 3, 3)}, str(path))
    with pytest.raises(CheckpointError, match="features.0.weight"):
        load_vgg19(path)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_vgg19(tmp_path / "junk.pth")


def test_weights_are_looked_up_explicit_then_environment_then_cache(tmp_path, monkeypatch, no_default_vgg):
    assert find_vgg19_weights() is None
    cache = tmp_path / "home" / ".cache" / "animate-cli"
    cache.mkdir(parents=True)
    (cache / "vgg19.pth").write_bytes(b"x")
    assert find_vgg19_weights() == cache / "vgg19.pth"
    (cache / "vgg19.safetensors").write_bytes(b"x")
    assert find_vgg19_weights() == cache / "vgg19.safetensors"
    named = tmp_path / "named.pth"
    named.write_bytes(b"x")
    monkeypatch.setenv(ENV_VARIABLE, str(named))
    assert find_vgg19_weights() == named
    assert find_vgg19_weights(cache / "vgg19.pth") == cache / "vgg19.pth"
    with pytest.raises(CheckpointError, match="--vgg19"):
        find_vgg19_weights(tmp_path / "missing.pth")
    monkeypatch.setenv(ENV_VARIABLE, str(tmp_path / "missing.pth"))
    with pytest.raises(CheckpointError, match=ENV_VARIABLE):
        find_vgg19_weights()


def test_reconstruction_loss_falls_back_to_l1_without_weights(tmp_path, no_default_vgg):
    fallback = build_reconstruction_loss([10, 10, 10, 10, 4])
    assert fallback.kind == "l1" and fallback.weight == pytest.approx(8.8)
    assert build_reconstruction_loss([10] * 5, mode="l1").kind == "l1"
    with pytest.raises(BadInputError, match="VGG19 weights"):
        build_reconstruction_loss([10] * 5, mode="vgg19")
    path, _ = random_vgg19_file(tmp_path, ".safetensors")
    assert build_reconstruction_loss([10] * 5, vgg19_weights=path).kind == "vgg19"


def test_equivariance_losses_vanish_for_consistent_keypoints():
    transform = RandomTransform.sample(2, TransformParams(0.05, 0.005, 5), torch.Generator().manual_seed(0))
    jacobian = torch.eye(2).repeat(2, 5, 1, 1) + 0.1 * torch.rand(2, 5, 2, 2)
    kp = Keypoints(value=torch.rand(2, 5, 2) - 0.5, jacobian=jacobian)
    identity = RandomTransform.sample(2, TransformParams(0.0, 0.0, 5))
    losses = equivariance_losses(kp, kp, identity, 10, 10)
    assert losses["equivariance_value"].item() == 0 and losses["equivariance_jacobian"].item() < 1e-6
    # keypoints that moved exactly as the warp says: kp_drv = T(kp_t), J_drv = ∇T(kp_t) J_t
    moved = Keypoints(
        value=transform.warp_coordinates(kp.value), jacobian=transform.jacobian(kp.value) @ kp.jacobian
    )
    losses = equivariance_losses(moved, kp, transform, 10, 10)
    assert losses["equivariance_value"].item() < 1e-6 and losses["equivariance_jacobian"].item() < 1e-5
    assert equivariance_losses(kp, kp, transform, 10, 10)["equivariance_value"].item() > 0
    zeroth = Keypoints(value=kp.value)
    assert set(equivariance_losses(zeroth, zeroth, transform, 10, 10)) == {"equivariance_value"}


def test_keypoint_separation_loss_is_largest_for_collapsed_keypoints():
    collapsed = torch.zeros(2, 4, 2)
    assert keypoint_separation_loss(collapsed, 10.0).item() == pytest.approx(10.0)  # every pair at distance 0
    corners = torch.tensor([[[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]]]).repeat(2, 1, 1)
    assert keypoint_separation_loss(corners, 10.0).item() < 1e-9  # 1 apart: exp(-50) per pair
    # two keypoints 0.1 apart (one σ), the rest far: 2 of the 12 ordered pairs count, exp(-1/2) each
    near = corners.clone()
    near[:, 1] = near[:, 0] + torch.tensor([0.1, 0.0])
    assert keypoint_separation_loss(near, 1.0).item() == pytest.approx(2 * torch.exp(torch.tensor(-0.5)).item() / 12)
    spread = torch.zeros(1, 3, 2, requires_grad=True)
    with torch.no_grad():
        spread[0, 1, 0] = 0.05
    keypoint_separation_loss(spread, 1.0).backward()
    assert spread.grad[0, 1, 0] < 0 < spread.grad[0, 0, 0]  # descending the gradient moves the pair apart


def test_lsgan_and_feature_matching():
    real = {1.0: ([torch.ones(1, 4, 5, 5), torch.ones(1, 8, 2, 2)], torch.ones(1, 1, 2, 2))}
    fake = {1.0: ([torch.zeros(1, 4, 5, 5), torch.ones(1, 8, 2, 2)], torch.zeros(1, 1, 2, 2))}
    assert generator_gan_loss(real, 1.0).item() == 0 and generator_gan_loss(fake, 2.0).item() == 2
    assert discriminator_gan_loss(real, fake, 1.0).item() == 0
    assert discriminator_gan_loss(fake, real, 1.0).item() == 2
    assert feature_matching_loss(real, fake, [10, 10]).item() == 10
    assert feature_matching_loss(real, fake, [0, 10]).item() == 0
