"""Training objectives (FACTS §9): multi-scale reconstruction, equivariance, LSGAN and feature matching.

Reconstruction loss: with VGG19 weights available locally (see :func:`animate_cli.training.vgg.find_vgg19_weights`:
``--vgg19 PATH``, $ANIMATE_VGG19_WEIGHTS, ``~/.cache/animate-cli/vgg19.safetensors`` or ``vgg19.pth``) it is the
published perceptual pyramid loss

    Σ_scales Σ_i w_i · mean|φ_i(prediction_s) − φ_i(driving_s)|  (φ_i: VGG19 relu1_1 .. relu5_1, w: perceptual weights);

without them it falls back to an L1 pyramid, Σ_scales w̄ · mean|prediction_s − driving_s| with w̄ the mean of the
perceptual weights (10 in every published config). Pyramid levels come from the published anti-aliased downsampling
at ``train_params.scales``. A pixel L1 loss typically gives blurrier predictions than the perceptual one, so which
one ran is recorded: the first line of ``animate train``'s output, ``reconstruction_loss`` in the first record of
``log.jsonl`` and in the checkpoint's provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from animate_cli.errors import BadInputError
from animate_cli.networks.blocks import AntiAliasInterpolation2d
from animate_cli.networks.discriminator import scale_key
from animate_cli.structures import Keypoints
from animate_cli.training.transforms import RandomTransform, full_precision
from animate_cli.training.vgg import VGG19Features, find_vgg19_weights, load_vgg19

ReconstructionKind = Literal["vgg19", "l1"]
Pyramid = dict[float, torch.Tensor]


class ImagePyramid(nn.Module):
    """An image at several scales, published anti-aliased downsampling: (B, C, H, W) -> scale -> (B, C, sH, sW)."""

    def __init__(self, scales: Sequence[float], channels: int):
        super().__init__()
        self.scales = tuple(dict.fromkeys(float(s) for s in scales))  # ordered, without repeats
        self.downs = nn.ModuleDict({scale_key(s): AntiAliasInterpolation2d(channels, s) for s in self.scales})

    def forward(self, x: torch.Tensor) -> Pyramid:
        return {scale: self.downs[scale_key(scale)](x) for scale in self.scales}


class PerceptualPyramidLoss(nn.Module):
    """Σ over pyramid levels and VGG19 slices of w_i · mean|φ_i(prediction) − φ_i(target)| (target not differentiated).
    """

    kind: ReconstructionKind = "vgg19"

    def __init__(self, vgg: VGG19Features, weights: Sequence[float]):
        super().__init__()
        if len(weights) != 5:
            raise BadInputError(f"loss_weights.perceptual needs 5 weights (relu1_1 .. relu5_1), got {len(weights)}")
        self.vgg = vgg
        self.weights = tuple(float(w) for w in weights)

    def forward(self, prediction: Pyramid, target: Pyramid) -> torch.Tensor:
        total = prediction[next(iter(prediction))].new_zeros(())
        for scale, predicted in prediction.items():
            with torch.no_grad():
                target_features = self.vgg(target[scale])
            for weight, a, b in zip(self.weights, self.vgg(predicted), target_features):
                if weight != 0:
                    total = total + weight * (a - b).abs().mean()
        return total


class L1PyramidLoss(nn.Module):
    """Σ over pyramid levels of weight · mean|prediction − target| (the fallback without VGG19 weights)."""

    kind: ReconstructionKind = "l1"

    def __init__(self, weight: float):
        super().__init__()
        self.weight = float(weight)

    def forward(self, prediction: Pyramid, target: Pyramid) -> torch.Tensor:
        return sum(self.weight * (predicted - target[scale]).abs().mean() for scale, predicted in prediction.items())


def build_reconstruction_loss(
    perceptual_weights: Sequence[float],
    mode: Literal["auto", "vgg19", "l1"] = "auto",
    vgg19_weights: str | Path | None = None,
) -> PerceptualPyramidLoss | L1PyramidLoss:
    """``auto``: VGG19 perceptual loss when weights are found locally, else L1; ``vgg19`` requires the weights."""
    if mode not in ("auto", "vgg19", "l1"):
        raise BadInputError(f"reconstruction loss must be auto, vgg19 or l1, got {mode!r}")
    path = None if mode == "l1" else find_vgg19_weights(vgg19_weights)
    if path is None:
        if mode == "vgg19":
            raise BadInputError(
                "the vgg19 reconstruction loss needs VGG19 weights: pass --vgg19 PATH, set $ANIMATE_VGG19_WEIGHTS, "
                "or put vgg19.safetensors / vgg19.pth in ~/.cache/animate-cli/"
            )
        return L1PyramidLoss(sum(perceptual_weights) / max(len(perceptual_weights), 1))
    return PerceptualPyramidLoss(load_vgg19(path), perceptual_weights)


def equivariance_losses(
    kp_driving: Keypoints,
    kp_transformed: Keypoints,
    transform: RandomTransform,
    value_weight: float,
    jacobian_weight: float,
) -> dict[str, torch.Tensor]:
    """Keypoints of T-warped frames mapped back through T must match the originals (FACTS §9).

    kp_driving: detected on the frames; kp_transformed: detected on ``transform.transform_frame(frames)``.
    value:    w · mean|kp_drv − T(kp_t)|
    jacobian: w · mean|I − J_drv⁻¹ (∇T(kp_t) J_t)|   (first-order models only, i.e. when both carry jacobians)
    """
    losses: dict[str, torch.Tensor] = {}
    with full_precision(kp_driving.value.device):
        if value_weight != 0:
            mapped = transform.warp_coordinates(kp_transformed.value)
            losses["equivariance_value"] = value_weight * (kp_driving.value.float() - mapped).abs().mean()
        if jacobian_weight != 0 and kp_driving.jacobian is not None and kp_transformed.jacobian is not None:
            through_transform = torch.matmul(transform.jacobian(kp_transformed.value), kp_transformed.jacobian.float())
            relative = torch.matmul(torch.inverse(kp_driving.jacobian.float()), through_transform)
            identity = torch.eye(2, dtype=relative.dtype, device=relative.device)
            losses["equivariance_jacobian"] = jacobian_weight * (identity - relative).abs().mean()
    return losses


# The separation loss's length scale on the [-1, 1] frame: pairs closer than about 2σ (a tenth of the width) pay.
KEYPOINT_SEPARATION_SIGMA = 0.1


def keypoint_separation_loss(kp: torch.Tensor, weight: float, sigma: float = KEYPOINT_SEPARATION_SIGMA) -> torch.Tensor:
    """w · mean over pairs i ≠ j of exp(−‖kp_i − kp_j‖² / 2σ²), kp: (B, K, 2) on [−1, 1] (needs K >= 2).

    Not part of FOMM's objective (its configs leave the weight at 0). Early in training every keypoint can settle
    on the subject's centre, where one of them already explains the global motion; the generator is then too blurry
    to reward spreading out, and training stalls there. This term, the separation loss of Zhang et al. 2018
    ("Unsupervised discovery of object landmarks as structural representations"), makes that collapse cost.
    """
    kp = kp.float()
    count = kp.shape[1]
    squared = (kp.unsqueeze(2) - kp.unsqueeze(1)).pow(2).sum(-1)  # (B, K, K)
    closeness = torch.exp(-squared / (2 * sigma**2))
    off_diagonal = closeness.sum((1, 2)) - count  # the diagonal holds exp(0) = 1 for each keypoint
    return weight * off_diagonal.mean() / (count * (count - 1))


DiscriminatorOutput = dict[float, tuple[list[torch.Tensor], torch.Tensor]]


def generator_gan_loss(fake: DiscriminatorOutput, weight: float) -> torch.Tensor:
    """LSGAN generator term: Σ_scales w · mean((1 − D(prediction))²)."""
    return sum(weight * ((1 - prediction_map) ** 2).mean() for _, prediction_map in fake.values())


def discriminator_gan_loss(real: DiscriminatorOutput, fake: DiscriminatorOutput, weight: float) -> torch.Tensor:
    """LSGAN discriminator term: Σ_scales w · mean((1 − D(real))² + D(prediction)²)."""
    return sum(
        weight * ((1 - real[scale][1]) ** 2 + fake[scale][1] ** 2).mean() for scale in real
    )


def feature_matching_loss(
    real: DiscriminatorOutput, fake: DiscriminatorOutput, weights: Sequence[float]
) -> torch.Tensor:
    """Σ_scales Σ_i w_i · mean|D_i(real) − D_i(prediction)| over the discriminator's block outputs."""
    total = next(iter(fake.values()))[1].new_zeros(())
    for scale, (fake_maps, _) in fake.items():
        for weight, a, b in zip(weights, real[scale][0], fake_maps):
            if weight != 0:
                total = total + weight * (a - b).abs().mean()
    return total
