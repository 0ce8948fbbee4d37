"""Dense motion network: sparse keypoint motions -> K+1 masks, dense flow and occlusion map (seed eq. 4.1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from animate_cli.config import CommonParams, DenseMotionParams
from animate_cli.motion import dense_flow, keypoint_heatmaps, sparse_motions, warp
from animate_cli.networks.blocks import AntiAliasInterpolation2d, Hourglass
from animate_cli.structures import DenseMotion, Keypoints


class DenseMotionNetwork(nn.Module):
    """Published ``DenseMotionNetwork``: same layers, same state-dict keys.

    Works at ``scale_factor`` of the input resolution. The hourglass sees, for the background and each keypoint,
    the heatmap difference G(kp_drv) - G(kp_src) and the source deformed by that slot's sparse motion.
    """

    def __init__(self, common: CommonParams, params: DenseMotionParams, estimate_occlusion_map: bool, align_corners: bool):
        super().__init__()
        self.num_kp = common.num_kp
        self.kp_variance = params.kp_variance
        self.align_corners = align_corners
        self.hourglass = Hourglass(
            params.block_expansion, in_features=(common.num_kp + 1) * (common.num_channels + 1),
            num_blocks=params.num_blocks, max_features=params.max_features,
        )
        self.mask = nn.Conv2d(self.hourglass.out_filters, common.num_kp + 1, kernel_size=(7, 7), padding=(3, 3))
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=(7, 7), padding=(3, 3)) if estimate_occlusion_map else None
        )
        self.scale_factor = params.scale_factor
        self.down = AntiAliasInterpolation2d(common.num_channels, params.scale_factor) if params.scale_factor != 1 else None

    def downsample(self, source: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the working resolution; depends only on the source, so callers may cache it."""
        return self.down(source) if self.down is not None else source

    def forward(
        self, motion_image: torch.Tensor, kp_source: Keypoints, kp_driving: Keypoints, keep_sparse_deformed: bool = False
    ) -> DenseMotion:
        """motion_image: (1 or B, C, h, w) the source at working resolution (``downsample``).

        kp_source: (1 or B, K, ...); kp_driving: (B, K, ...). Returns a DenseMotion at (h, w).
        """
        batch = kp_driving.batch_size
        _, channels, height, width = motion_image.shape
        num_slots = self.num_kp + 1
        # heatmap difference representation, background slot first
        difference = keypoint_heatmaps(kp_driving.value, height, width, self.kp_variance) - keypoint_heatmaps(
            kp_source.value, height, width, self.kp_variance
        )
        heatmaps = torch.cat([difference.new_zeros(batch, 1, height, width), difference], dim=1).unsqueeze(2)

        motions = sparse_motions(kp_source, kp_driving, height, width)  # (B, K+1, h, w, 2)
        sources = motion_image.unsqueeze(1).expand(batch, num_slots, channels, height, width)
        sparse_deformed = warp(
            sources.reshape(batch * num_slots, channels, height, width),
            motions.reshape(batch * num_slots, height, width, 2),
            self.align_corners,
        ).view(batch, num_slots, channels, height, width)

        hourglass_input = torch.cat([heatmaps, sparse_deformed], dim=2).view(batch, -1, height, width)
        features = self.hourglass(hourglass_input)
        mask = F.softmax(self.mask(features), dim=1)
        deformation = dense_flow(mask, motions)
        occlusion_map = torch.sigmoid(self.occlusion(features)) if self.occlusion is not None else None
        return DenseMotion(
            mask=mask, deformation=deformation, occlusion_map=occlusion_map,
            sparse_deformed=sparse_deformed if keep_sparse_deformed else None,
        )
