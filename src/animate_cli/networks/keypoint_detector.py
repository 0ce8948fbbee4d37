"""Keypoint detector: hourglass -> K softmax heatmaps -> keypoints (+ jacobians for the first order)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from animate_cli.config import CommonParams, KeypointDetectorParams
from animate_cli.motion import heatmap_covariance, heatmap_jacobian, heatmap_mean
from animate_cli.networks.blocks import AntiAliasInterpolation2d, Hourglass
from animate_cli.structures import Keypoints


class KeypointDetector(nn.Module):
    """Published ``KPDetector``: same layers, same state-dict keys.

    Input x: (B, C, H, W) in [0, 1]. Heatmaps are softmax(logits / temperature) over the positions of the
    valid 7x7 convolution (58x58 for a 256 input), and keypoint coordinates are relative to that grid.
    """

    def __init__(self, common: CommonParams, params: KeypointDetectorParams):
        super().__init__()
        self.num_kp = common.num_kp
        self.temperature = params.temperature
        self.predictor = Hourglass(
            params.block_expansion, in_features=common.num_channels, num_blocks=params.num_blocks,
            max_features=params.max_features,
        )
        self.kp = nn.Conv2d(self.predictor.out_filters, common.num_kp, kernel_size=(7, 7), padding=params.pad)
        if common.estimate_jacobian:
            self.num_jacobian_maps = 1 if params.single_jacobian_map else common.num_kp
            self.jacobian = nn.Conv2d(
                self.predictor.out_filters, 4 * self.num_jacobian_maps, kernel_size=(7, 7), padding=params.pad
            )
            # start at the identity jacobian, as published: zero weights, bias [1, 0, 0, 1]
            with torch.no_grad():
                self.jacobian.weight.zero_()
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * self.num_jacobian_maps))
        else:
            self.jacobian = None
        self.down = AntiAliasInterpolation2d(common.num_channels, params.scale_factor) if params.scale_factor != 1 else None

    def heatmaps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (heatmap (B, K, h, w) summing to 1 per keypoint, features (B, F, H', W'))."""
        if self.down is not None:
            x = self.down(x)
        features = self.predictor(x)
        logits = self.kp(features)
        batch, num_kp, height, width = logits.shape
        heatmap = F.softmax(logits.view(batch, num_kp, -1) / self.temperature, dim=2).view(batch, num_kp, height, width)
        return heatmap, features

    def forward(self, x: torch.Tensor, with_covariance: bool = False) -> Keypoints:
        heatmap, features = self.heatmaps(x)
        value = heatmap_mean(heatmap)
        jacobian = None
        if self.jacobian is not None:
            maps = self.jacobian(features)
            maps = maps.view(maps.shape[0], self.num_jacobian_maps, 4, *maps.shape[2:])
            jacobian = heatmap_jacobian(heatmap, maps)
        covariance = heatmap_covariance(heatmap, value) if with_covariance else None
        return Keypoints(value=value, jacobian=jacobian, covariance=covariance)
