"""Random warps of the image plane for the equivariance losses (FACTS §9).

A keypoint detector is equivariant when detecting on a warped frame and mapping the keypoints back through the
warp gives the keypoints of the original frame; the losses in :mod:`animate_cli.training.losses` penalise the
difference, for the keypoint values and (first order) for their jacobians.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from animate_cli.config import TransformParams
from animate_cli.motion import make_coordinate_grid


def full_precision(device: torch.device):
    """Turn autocast off: warped coordinates need float32 (bf16 resolves [-1, 1] to about 1/128, a pixel at 256)."""
    return torch.autocast(device_type=device.type, enabled=False)


def tps_kernel(distance: torch.Tensor) -> torch.Tensor:
    """The published thin-plate-spline radial basis U(r) = r² log(r + 1e-6) (r an L1 distance; U(0) = 0)."""
    return distance**2 * torch.log(distance + 1e-6)


@dataclass(frozen=True)
class RandomTransform:
    """One random affine + thin-plate-spline warp per batch element, acting on (x, y) in [-1, 1]:

        T(z) = A z + t + s(z) · (1, 1)ᵀ,   s(z) = Σ_p w_p U(|z - c_p|₁)

    theta: (B, 2, 3) = [A | t]; control_points: (P, 2) a regular grid on [-1, 1]²; control_weights: (B, P).
    As published, the spline term s(z) is one scalar per point added to both coordinates.
    """

    theta: torch.Tensor
    control_points: torch.Tensor
    control_weights: torch.Tensor

    @classmethod
    def sample(
        cls,
        batch: int,
        params: TransformParams,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> RandomTransform:
        """θ = [I | 0] + N(0, sigma_affine²) and spline weights N(0, sigma_tps²) on a points_tps² control grid.

        Noise is drawn on the CPU (from ``generator`` when given) so a seed gives the same warp on any device.
        """
        theta = torch.eye(2, 3) + params.sigma_affine * torch.randn(batch, 2, 3, generator=generator)
        points = params.points_tps
        weights = params.sigma_tps * torch.randn(batch, points * points, generator=generator)
        control_points = make_coordinate_grid(points, points).reshape(-1, 2)
        return cls(theta.to(device), control_points.to(device), weights.to(device))

    @property
    def batch_size(self) -> int:
        return self.theta.shape[0]

    def warp_coordinates(self, coordinates: torch.Tensor) -> torch.Tensor:
        """coordinates: (B, N, 2) (or (1, N, 2), broadcast) -> T(coordinates): (B, N, 2), in the transform's dtype."""
        with full_precision(self.theta.device):
            coordinates = coordinates.to(self.theta.dtype)
            linear, translation = self.theta[:, :, :2], self.theta[:, :, 2]
            warped = torch.einsum("bij,bnj->bni", linear, coordinates.expand(self.batch_size, -1, -1))
            warped = warped + translation.unsqueeze(1)
            distances = (coordinates.unsqueeze(2) - self.control_points.view(1, 1, -1, 2)).abs().sum(-1)  # (B|1, N, P)
            spline = (tps_kernel(distances) * self.control_weights.unsqueeze(1)).sum(-1, keepdim=True)  # (B, N, 1)
            return warped + spline

    def jacobian(self, coordinates: torch.Tensor) -> torch.Tensor:
        """dT/dz at each point by autograd, differentiable itself (create_graph): (B, N, 2) -> (B, N, 2, 2).

        Row i holds the gradient of output coordinate i. Works on coordinates that do not require grad, and
        under ``torch.no_grad()``.
        """
        with torch.enable_grad():
            if not coordinates.requires_grad:
                coordinates = coordinates.detach().requires_grad_(True)
            warped = self.warp_coordinates(coordinates)
            # each output point depends only on its own input point, so the gradient of the sum is per point
            rows = [
                torch.autograd.grad(warped[..., i].sum(), coordinates, create_graph=True)[0] for i in range(2)
            ]
        return torch.stack(rows, dim=-2)

    def transform_frame(self, frame: torch.Tensor) -> torch.Tensor:
        """The frame seen through the warp, output(z) = frame(T(z)): (B, C, H, W) -> (B, C, H, W).

        Reflection padding so the warped frame has no black borders for the detector to key on; align_corners
        True so the identity warp reproduces the frame exactly (our grid convention, FACTS §11).
        """
        batch, _, height, width = frame.shape
        grid = make_coordinate_grid(height, width, dtype=self.theta.dtype, device=frame.device).view(1, -1, 2)
        grid = self.warp_coordinates(grid).view(batch, height, width, 2)
        with full_precision(frame.device):
            return F.grid_sample(frame.to(grid.dtype), grid, padding_mode="reflection", align_corners=True)
