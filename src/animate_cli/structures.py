"""Typed results passed between the networks (instead of the published code's string-keyed dicts)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Keypoints:
    """K keypoints per image.

    value: (B, K, 2), (x, y) on [-1, 1] over the keypoint heatmap grid.
    jacobian: (B, K, 2, 2) local affine maps (first order), or None for the zeroth-order model.
    covariance: (B, K, 2, 2) spread of each heatmap around its mean (seed eq. 2.1), when computed.
    """

    value: torch.Tensor
    jacobian: torch.Tensor | None = None
    covariance: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.value.shape[0]

    @property
    def num_kp(self) -> int:
        return self.value.shape[1]

    def __getitem__(self, index) -> Keypoints:
        """Select batch elements (an int keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return Keypoints(*(None if t is None else t[index] for t in (self.value, self.jacobian, self.covariance)))

    def expand(self, batch_size: int) -> Keypoints:
        """Repeat a batch of one to ``batch_size`` (a view, no copy)."""
        return Keypoints(
            *(None if t is None else t.expand(batch_size, *t.shape[1:]) for t in (self.value, self.jacobian, self.covariance))
        )

    def to(self, *args, **kwargs) -> Keypoints:
        return Keypoints(*(None if t is None else t.to(*args, **kwargs) for t in (self.value, self.jacobian, self.covariance)))

    def detach(self) -> Keypoints:
        return Keypoints(*(None if t is None else t.detach() for t in (self.value, self.jacobian, self.covariance)))

    @staticmethod
    def cat(items: list[Keypoints]) -> Keypoints:
        first = items[0]
        return Keypoints(
            *(
                None if getattr(first, name) is None else torch.cat([getattr(k, name) for k in items])
                for name in ("value", "jacobian", "covariance")
            )
        )


@dataclass(frozen=True)
class DenseMotion:
    """Output of the dense motion network, at its working resolution (h, w).

    mask: (B, K+1, h, w) softmax weights of the background and K keypoint motions (seed eq. 4.1).
    deformation: (B, h, w, 2) for each output pixel, where to sample the source ((x, y) on [-1, 1]).
    occlusion_map: (B, 1, h, w) in (0, 1), or None.
    sparse_deformed: (B, K+1, C, h, w) the source warped by each sparse motion, or None when not kept.
    """

    mask: torch.Tensor
    deformation: torch.Tensor
    occlusion_map: torch.Tensor | None
    sparse_deformed: torch.Tensor | None = None


@dataclass(frozen=True)
class SourceEncoding:
    """What the generator needs of a source image, computed once and reused for every driving frame.

    image: (1, C, H, W) the source in [0, 1]. features: (1, F, h', w') encoder output.
    motion_image: (1, C, h, w) the source downsampled for the dense motion network.
    skips: the encoder's outputs above the deepest level, finest first ((1, F_l, H / 2^l, W / 2^l) for
    l = 0 .. num_down_blocks - 1), kept only by a generator with skip connections, else empty.
    """

    image: torch.Tensor
    features: torch.Tensor
    motion_image: torch.Tensor
    skips: tuple[torch.Tensor, ...] = ()


@dataclass(frozen=True)
class GeneratorOutput:
    """prediction: (B, C, H, W) in [0, 1]. deformed: (B, C, H, W) the source warped by the dense flow, when asked."""

    prediction: torch.Tensor
    motion: DenseMotion
    deformed: torch.Tensor | None = None
