"""Training progress pictures: one row per batch item, columns

    source | driving | source + keypoints | driving + keypoints | deformed source | prediction | occlusion map
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from animate_cli.media.images import write_image
from animate_cli.visualize import draw_keypoints, normalized_to_pixels


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) in [0, 1] (C = 1 or 3) -> (B, H, W, 3) uint8."""
    images = images.detach().float().clamp(0, 1).cpu()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    return (images.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


def training_panel(
    source: torch.Tensor,
    driving: torch.Tensor,
    kp_source: torch.Tensor,
    kp_driving: torch.Tensor,
    deformed: torch.Tensor,
    prediction: torch.Tensor,
    occlusion_map: torch.Tensor | None,
    max_items: int = 4,
) -> np.ndarray:
    """images (B, 3, H, W) in [0, 1], keypoints (B, K, 2), occlusion (B, 1, h, w) or None
    -> (rows·H, cols·W, 3) uint8, one row per batch item up to ``max_items``."""
    items = min(max_items, source.shape[0])
    height, width = source.shape[2:]
    sources, drivings = _to_uint8(source[:items]), _to_uint8(driving[:items])
    kp_s, kp_d = kp_source[:items].detach().float().cpu().numpy(), kp_driving[:items].detach().float().cpu().numpy()
    kp_s, kp_d = normalized_to_pixels(kp_s, width, height), normalized_to_pixels(kp_d, width, height)
    columns = [
        sources,
        drivings,
        np.stack([draw_keypoints(sources[i], kp_s[i]) for i in range(items)]),
        np.stack([draw_keypoints(drivings[i], kp_d[i]) for i in range(items)]),
        _to_uint8(deformed[:items]),
        _to_uint8(prediction[:items]),
    ]
    if occlusion_map is not None:
        occlusion = F.interpolate(occlusion_map[:items].detach().float(), size=(height, width), mode="bilinear")
        columns.append(_to_uint8(occlusion))
    rows = [np.concatenate([column[i] for column in columns], axis=1) for i in range(items)]
    return np.concatenate(rows, axis=0)


def save_panel(path: Path, panel: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, panel)
    return path
