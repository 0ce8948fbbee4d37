"""Multi-scale patch discriminator (published ``MultiScaleDiscriminator``), for adversarial training."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from animate_cli.config import CommonParams, DiscriminatorParams
from animate_cli.motion import keypoint_heatmaps
from animate_cli.structures import Keypoints


class DiscriminatorBlock(nn.Module):
    """conv 4x4 (no padding, optional spectral norm) -> instance norm (optional) -> LeakyReLU 0.2 -> avg pool (optional)."""

    def __init__(self, in_features: int, out_features: int, norm: bool, pool: bool, sn: bool):
        super().__init__()
        conv = nn.Conv2d(in_features, out_features, kernel_size=4)
        # the pre-parametrization spectral norm keeps the published keys weight_orig / weight_u / weight_v
        self.conv = nn.utils.spectral_norm(conv) if sn else conv
        self.norm = nn.InstanceNorm2d(out_features, affine=True) if norm else None
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.norm is not None:
            out = self.norm(out)
        out = F.leaky_relu(out, 0.2)
        return F.avg_pool2d(out, (2, 2)) if self.pool else out


class Discriminator(nn.Module):
    """One scale: returns the feature maps of every block and the patch prediction map."""

    def __init__(self, common: CommonParams, params: DiscriminatorParams, kp_variance: float = 0.01):
        super().__init__()
        self.use_kp = params.use_kp
        self.kp_variance = kp_variance
        blocks = []
        for i in range(params.num_blocks):
            in_features = (
                common.num_channels + common.num_kp * params.use_kp
                if i == 0
                else min(params.max_features, params.block_expansion * (2**i))
            )
            out_features = min(params.max_features, params.block_expansion * (2 ** (i + 1)))
            blocks.append(
                DiscriminatorBlock(in_features, out_features, norm=i != 0, pool=i != params.num_blocks - 1, sn=params.sn)
            )
        self.down_blocks = nn.ModuleList(blocks)
        conv = nn.Conv2d(blocks[-1].conv.out_channels, 1, kernel_size=1)
        self.conv = nn.utils.spectral_norm(conv) if params.sn else conv

    def forward(self, x: torch.Tensor, kp: Keypoints | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        out = x
        if self.use_kp:
            out = torch.cat([out, keypoint_heatmaps(kp.value, *x.shape[2:], self.kp_variance)], dim=1)
        feature_maps = []
        for block in self.down_blocks:
            out = block(out)
            feature_maps.append(out)
        return feature_maps, self.conv(out)


def scale_key(scale: float) -> str:
    """The published ModuleDict key of a scale: ``str(scale)`` with '.' -> '-', where YAML's ``1`` gives '1'."""
    return f"{scale:g}".replace(".", "-")


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, common: CommonParams, params: DiscriminatorParams, kp_variance: float = 0.01):
        super().__init__()
        self.scales = tuple(params.scales)
        self.discs = nn.ModuleDict({scale_key(s): Discriminator(common, params, kp_variance) for s in self.scales})

    def forward(
        self, pyramid: dict[float, torch.Tensor], kp: Keypoints | None = None
    ) -> dict[float, tuple[list[torch.Tensor], torch.Tensor]]:
        """pyramid: scale -> (B, C, h, w) image. Returns scale -> (feature maps, prediction map)."""
        return {scale: self.discs[scale_key(scale)](pyramid[scale], kp) for scale in self.scales}
