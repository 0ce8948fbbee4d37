"""The seed's motion math as pure, differentiable functions.

Conventions: coordinates are (x, y) on [-1, 1], with -1 and +1 at the centres of the first and last pixel
(``make_coordinate_grid``). Keypoints ``kp: (B, K, 2)``, jacobians ``(B, K, 2, 2)`` acting on column vectors
(x, y)^T. Equation numbers refer to ``shared/seed`` (the zeroth/first-order decomposition note).

The networks in :mod:`animate_cli.nn` hold parameters and call these; nothing here has state.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from animate_cli.structures import Keypoints


def make_coordinate_grid(
    height: int, width: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """Pixel-centre coordinates of an (height, width) image: (H, W, 2), last dim (x, y).

    x_j = 2 j / (W - 1) - 1 and y_i = 2 i / (H - 1) - 1, so the corners are exactly ±1.
    """
    x = torch.arange(width, dtype=dtype, device=device)
    y = torch.arange(height, dtype=dtype, device=device)
    x = 2 * (x / (width - 1)) - 1
    y = 2 * (y / (height - 1)) - 1
    xx = x.view(1, -1).expand(height, width)
    yy = y.view(-1, 1).expand(height, width)
    return torch.stack([xx, yy], dim=-1)


def heatmap_mean(heatmap: torch.Tensor) -> torch.Tensor:
    """Keypoint location as the heatmap-weighted mean of the grid (seed eq. 2.1, h_k = Σ_p H_k[p] p).

    heatmap: (B, K, H, W), each map summing to 1. Returns kp: (B, K, 2).
    """
    grid = make_coordinate_grid(*heatmap.shape[2:], dtype=heatmap.dtype, device=heatmap.device)
    return (heatmap.unsqueeze(-1) * grid).sum(dim=(2, 3))


def heatmap_covariance(heatmap: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Spread of each heatmap around its mean (seed eq. 2.1, Σ_k = Σ_p H_k[p] (p - h_k)(p - h_k)^T).

    heatmap: (B, K, H, W); mean: (B, K, 2). Returns (B, K, 2, 2).
    """
    grid = make_coordinate_grid(*heatmap.shape[2:], dtype=heatmap.dtype, device=heatmap.device)
    centred = grid.view(1, 1, *grid.shape) - mean.view(*mean.shape[:2], 1, 1, 2)  # (B, K, H, W, 2)
    return torch.einsum("bkhw,bkhwi,bkhwj->bkij", heatmap, centred, centred)


def heatmap_jacobian(heatmap: torch.Tensor, jacobian_maps: torch.Tensor) -> torch.Tensor:
    """Per-keypoint jacobian as the heatmap-weighted sum of a predicted 2x2 field (FOMM's first-order head).

    heatmap: (B, K, H, W); jacobian_maps: (B, M, 4, H, W) with M = K, or M = 1 shared by all keypoints.
    Returns (B, K, 2, 2), row-major [[j0, j1], [j2, j3]].
    """
    weighted = heatmap.unsqueeze(2) * jacobian_maps  # M = 1 broadcasts over K
    return weighted.sum(dim=(3, 4)).view(heatmap.shape[0], heatmap.shape[1], 2, 2)


def keypoint_heatmaps(kp: torch.Tensor, height: int, width: int, variance: float) -> torch.Tensor:
    """Isotropic gaussian per keypoint on an (height, width) grid (seed eq. 2.2 with Σ = variance·I, α = 1).

    kp: (..., K, 2). Returns (..., K, H, W) = exp(-|p - kp|² / (2 variance)).
    """
    grid = make_coordinate_grid(height, width, dtype=kp.dtype, device=kp.device)
    diff = grid - kp.reshape(*kp.shape[:-1], 1, 1, 2)
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


def sparse_motions(kp_source: Keypoints, kp_driving: Keypoints, height: int, width: int) -> torch.Tensor:
    """The K+1 candidate backward motions from driving-frame coordinates into the source (seed 3.2, 4.1).

    Slot 0 is the background's identity motion T_0(z) = z. For keypoint k:
    zeroth order (no jacobians):  T_k(z) = z - kp_drv,k + kp_src,k  (the neighbourhood moves rigidly);
    first order:                  T_k(z) = J_src,k J_drv,k⁻¹ (z - kp_drv,k) + kp_src,k  (locally affine).

    kp_source, kp_driving: value (B, K, 2) (B may be 1 for either and broadcasts). Returns (B, K+1, H, W, 2).
    """
    identity = make_coordinate_grid(height, width, dtype=kp_driving.value.dtype, device=kp_driving.value.device)
    batch = max(kp_source.batch_size, kp_driving.batch_size)
    num_kp = kp_driving.num_kp
    relative = identity.view(1, 1, height, width, 2) - kp_driving.value.view(-1, num_kp, 1, 1, 2)
    if kp_driving.jacobian is not None and kp_source.jacobian is not None:
        jacobian = torch.matmul(kp_source.jacobian, torch.inverse(kp_driving.jacobian))  # (B, K, 2, 2)
        relative = torch.einsum("bkij,bkhwj->bkhwi", jacobian, relative)
    motions = relative + kp_source.value.view(-1, num_kp, 1, 1, 2)
    background = identity.view(1, 1, height, width, 2).expand(batch, 1, height, width, 2)
    return torch.cat([background, motions.expand(batch, *motions.shape[1:])], dim=1)


def dense_flow(mask: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
    """Mask-weighted sum of the candidate motions (seed eq. 4.1, F = Σ_k M_k ⊗ T_k).

    mask: (B, K+1, H, W); motions: (B, K+1, H, W, 2). Returns (B, H, W, 2).
    """
    return torch.einsum("bkhw,bkhwc->bhwc", mask, motions)


def warp(image: torch.Tensor, grid: torch.Tensor, align_corners: bool) -> torch.Tensor:
    """Backward warp: output(z) = image(grid(z)) by bilinear sampling, zero outside.

    image: (B, C, H, W); grid: (B, h, w, 2) in (x, y) on [-1, 1]. Returns (B, C, h, w); a batch of 1 on either
    side is shared by all of the other's (one source warped by B flows).
    ``align_corners=True`` reads ±1 as pixel centres, so ``make_coordinate_grid`` is then the exact identity;
    ``False`` is torch's default since 1.3 and what the published code gets on modern torch (FACTS §11).
    """
    batch = max(image.shape[0], grid.shape[0])
    image = image.expand(batch, *image.shape[1:])
    grid = grid.expand(batch, *grid.shape[1:])
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)


def blend_warped_source(warped: torch.Tensor, decoded: torch.Tensor, copy: torch.Tensor) -> torch.Tensor:
    """Output frame = copy · warped + (1 − copy) · decoded, per pixel.

    warped: (B, C, H, W) the source warped by the dense flow; decoded: (B, C, H, W) the generator's colours;
    copy: (B, 1, H, W) in [0, 1], where the warped source is right (visible in the source). Copying the warped
    pixels keeps the source's detail exactly; the decoder only has to paint what the source does not show.
    """
    return copy * warped + (1 - copy) * decoded


def resize_flow(flow: torch.Tensor, height: int, width: int, align_corners: bool = False) -> torch.Tensor:
    """Resample a (B, h, w, 2) flow to (B, height, width, 2) bilinearly.

    ``align_corners=False`` is the published generator's rule. It is exact for grids in the ``align_corners=False``
    convention, but resizes the corner-aligned identity (``make_coordinate_grid``) into a slight zoom about the
    centre: from 64 to 128 pixels, half a pixel at the borders. ``align_corners=True`` keeps that identity exact.
    """
    if flow.shape[1:3] == (height, width):
        return flow
    channels_first = flow.permute(0, 3, 1, 2)
    resized = F.interpolate(channels_first, size=(height, width), mode="bilinear", align_corners=align_corners)
    return resized.permute(0, 2, 3, 1)


def convex_hull_area(points: torch.Tensor | np.ndarray) -> float:
    """Area of the convex hull of (K, 2) points (scipy, float64); 0 when they are collinear or K < 3."""
    from scipy.spatial import ConvexHull, QhullError

    array = np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor) else points, dtype=np.float64)
    if len(array) < 3:
        return 0.0
    try:
        return float(ConvexHull(array).volume)  # in 2-D, .volume is the area
    except QhullError:
        return 0.0


def movement_scale(kp_source: Keypoints, kp_driving_initial: Keypoints) -> float:
    """sqrt(area(hull(kp_source))) / sqrt(area(hull(kp_driving_initial))) of batch element 0 (FOMM adapt-scale)."""
    source_area = convex_hull_area(kp_source.value[0])
    driving_area = convex_hull_area(kp_driving_initial.value[0])
    if source_area <= 0 or driving_area <= 0:
        return 1.0  # degenerate keypoints: no meaningful ratio, keep the driver's amplitude
    return math.sqrt(source_area) / math.sqrt(driving_area)


def normalize_keypoints(
    kp_source: Keypoints,
    kp_driving: Keypoints,
    kp_driving_initial: Keypoints,
    *,
    relative: bool = True,
    relative_jacobian: bool = True,
    adapt_movement_scale: bool = False,
    scale: float | None = None,
) -> Keypoints:
    """Move the source keypoints by the driving motion since a reference frame (FOMM's ``normalize_kp``).

    relative:  value = (kp_drv - kp_drv_ref) · s + kp_src, with s = ``movement_scale`` when adapting, else 1;
               jacobian = (J_drv J_drv_ref⁻¹) J_src when ``relative_jacobian`` and the model is first order.
    absolute:  the driving keypoints unchanged.
    kp_source, kp_driving_initial: (1, K, ...); kp_driving: (B, K, ...). ``scale`` skips recomputing the hull ratio.
    """
    if not relative:
        return kp_driving
    if scale is None:
        scale = movement_scale(kp_source, kp_driving_initial) if adapt_movement_scale else 1.0
    value = (kp_driving.value - kp_driving_initial.value) * scale + kp_source.value
    jacobian = kp_driving.jacobian
    if relative_jacobian and jacobian is not None and kp_source.jacobian is not None:
        change = torch.matmul(kp_driving.jacobian, torch.inverse(kp_driving_initial.jacobian))
        jacobian = torch.matmul(change, kp_source.jacobian)
    return Keypoints(value=value, jacobian=jacobian)
