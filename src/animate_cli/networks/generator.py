"""Occlusion-aware generator: encode the source, warp its features by the dense flow, mask occlusions, decode."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from animate_cli.config import CommonParams, GeneratorParams
from animate_cli.motion import blend_warped_source, resize_flow, warp
from animate_cli.networks.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from animate_cli.networks.dense_motion import DenseMotionNetwork
from animate_cli.structures import GeneratorOutput, Keypoints, SourceEncoding


class OcclusionAwareGenerator(nn.Module):
    """Published ``OcclusionAwareGenerator``: same layers, same state-dict keys.

    Split in two so the source-only half (``encode_source``) runs once per source, not once per frame.

    ``skip_connections`` (this project's option, off in every published config) makes it the U-Net of Monkey-Net's
    generator: the encoder's output at each resolution above the deepest, and the source image itself, are warped
    by the same dense flow, masked by the occlusion map and concatenated into the decoder at that resolution. The
    decoder then copies what the flow brings along (textured backgrounds, sharp part edges) instead of rebuilding
    it from the deepest features, and keeps the bottleneck's work for what is occluded in the source. Its last
    layer also predicts a full-resolution copy mask, and the frame is the warped source where the mask says copy
    and the decoded colour elsewhere (``motion.blend_warped_source``).
    """

    def __init__(self, common: CommonParams, params: GeneratorParams, align_corners: bool):
        super().__init__()
        expansion, max_features, num_down = params.block_expansion, params.max_features, params.num_down_blocks

        def width(level: int) -> int:
            return min(max_features, expansion * (2**level))

        self.align_corners = align_corners
        self.dense_motion_network = DenseMotionNetwork(
            common, params.dense_motion_params, params.estimate_occlusion_map, align_corners
        )
        self.first = SameBlock2d(common.num_channels, expansion, kernel_size=7, padding=3)
        self.down_blocks = nn.ModuleList(DownBlock2d(width(i), width(i + 1)) for i in range(num_down))
        # with skip connections, every decoder level after the first also reads the warped encoder output of its
        # resolution, and the last convolution the warped source image too (channels concatenated)
        self.skip_connections = params.skip_connections
        skip = 1 if self.skip_connections else 0
        self.up_blocks = nn.ModuleList(
            UpBlock2d(width(num_down - i) * (1 + skip * (i > 0)), width(num_down - i - 1)) for i in range(num_down)
        )
        self.bottleneck = nn.Sequential()
        for i in range(params.num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(width(num_down)))
        final_in = expansion + skip * (common.num_channels + (expansion if num_down else 0))
        # with skip connections, one more output channel: where to copy the warped source instead of the decoded colour
        self.final = nn.Conv2d(final_in, common.num_channels + skip, kernel_size=(7, 7), padding=(3, 3))

    def set_align_corners(self, align_corners: bool) -> None:
        self.align_corners = align_corners
        self.dense_motion_network.align_corners = align_corners

    @property
    def resizes_in_own_convention(self) -> bool:
        """Whether flow and occlusion are resized in the model's grid convention rather than by the published rule.

        The published rule resizes them half-pixel-centred whatever the convention; the skip layout, which copies
        full-resolution pixels where a half-pixel zoom shows, resizes them in the model's own.
        """
        return self.align_corners and self.skip_connections

    def resize_deformation(self, deformation: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The deformation (B, h, w, 2) at (height, width), by the rule this generator warps with."""
        return resize_flow(deformation, height, width, align_corners=self.resizes_in_own_convention)

    def frame_deformation(self, deformation: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """The deformation (B, h, w, 2) as the frame is made from it: at the image's resolution when the source is
        copied through skip connections, else at the warped features' resolution (``image_size`` / 2^down)."""
        scale = 1 if self.skip_connections else 2 ** len(self.down_blocks)
        return self.resize_deformation(deformation, image_size[0] // scale, image_size[1] // scale)

    def encode_source(self, source: torch.Tensor) -> SourceEncoding:
        """source: (B, C, H, W) in [0, 1] -> its encoder features and its dense-motion-resolution image."""
        features = self.first(source)
        skips = []
        for block in self.down_blocks:
            skips.append(features)
            features = block(features)
        return SourceEncoding(
            image=source,
            features=features,
            motion_image=self.dense_motion_network.downsample(source),
            skips=tuple(skips) if self.skip_connections else (),
        )

    def animate(
        self,
        encoding: SourceEncoding,
        kp_source: Keypoints,
        kp_driving: Keypoints,
        with_deformed: bool = False,
        keep_sparse_deformed: bool = False,
    ) -> GeneratorOutput:
        """Render the source (batch 1 or B) with the pose ``kp_driving`` (B frames).

        ``with_deformed`` also returns the full-resolution source warped by the dense flow (visualisation).
        """
        motion = self.dense_motion_network(encoding.motion_image, kp_source, kp_driving, keep_sparse_deformed)

        resize_corners = self.resizes_in_own_convention

        def flow_at(height: int, width: int) -> torch.Tensor:
            return self.resize_deformation(motion.deformation, height, width)

        def hide_occluded(warped: torch.Tensor) -> torch.Tensor:
            """Zero what the occlusion map says the source does not show."""
            if motion.occlusion_map is None:
                return warped
            occlusion = motion.occlusion_map
            if occlusion.shape[2:] != warped.shape[2:]:
                size = warped.shape[2:]
                occlusion = F.interpolate(occlusion, size=size, mode="bilinear", align_corners=resize_corners)
            return warped * occlusion

        def deform(features: torch.Tensor) -> torch.Tensor:
            return hide_occluded(warp(features, flow_at(*features.shape[2:]), self.align_corners))

        out = self.bottleneck(deform(encoding.features))
        skips = [deform(features) for features in encoding.skips]
        for block in self.up_blocks:
            out = block(out)
            if skips:
                out = torch.cat([out, skips.pop()], dim=1)
        deformed = None
        if with_deformed or self.skip_connections:
            image = encoding.image
            deformed = warp(image, flow_at(*image.shape[2:]), self.align_corners)
        if self.skip_connections:
            out = torch.sigmoid(self.final(torch.cat([out, hide_occluded(deformed)], dim=1)))
            colour, copy = out[:, :-1], out[:, -1:]
            prediction = blend_warped_source(deformed, colour, copy)
        else:
            prediction = torch.sigmoid(self.final(out))
        return GeneratorOutput(prediction=prediction, motion=motion, deformed=deformed if with_deformed else None)

    def forward(self, source: torch.Tensor, kp_source: Keypoints, kp_driving: Keypoints, **kwargs) -> GeneratorOutput:
        return self.animate(self.encode_source(source), kp_source, kp_driving, **kwargs)
