"""Data augmentation of a training pair, from ``dataset_params.augmentation_params``.

Every random choice is drawn once per pair and applied to both frames alike, so augmentation changes how a
clip looks, never the motion between its two frames. Order as published: resize, crop, flips, colour jitter.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from animate_cli.config import AugmentationParams, JitterParams

_LUMA = (0.299, 0.587, 0.114)


def grayscale(frames: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma."""
    weights = frames.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (frames * weights).sum(dim=1, keepdim=True)


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] -> hue, saturation, value, each in [0, 1]."""
    r, g, b = rgb.unbind(1)
    maximum, argmax = rgb.max(dim=1)
    chroma = maximum - rgb.min(dim=1).values
    safe = chroma.clamp_min(1e-12)  # grey pixels (chroma 0) get hue 0
    hue = torch.where(
        argmax == 0, ((g - b) / safe) % 6, torch.where(argmax == 1, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    hue = torch.where(chroma > 0, hue / 6, torch.zeros_like(hue))
    saturation = chroma / maximum.clamp_min(1e-12)  # black (max 0) has chroma 0, so saturation 0
    return torch.stack([hue, saturation, maximum], dim=1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`."""
    hue, saturation, value = hsv.unbind(1)
    # the standard closed form: channel n is v - v s max(0, min(k, 4 - k, 1)), k = (n + 6 h) mod 6
    channels = []
    for n in (5, 3, 1):
        k = (n + hue * 6) % 6
        channels.append(value - value * saturation * torch.clamp(torch.minimum(k, 4 - k), 0, 1))
    return torch.stack(channels, dim=1)


def color_jitter(frames: torch.Tensor, params: JitterParams, rng: np.random.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and hue changes in a random order, with factors shared by all frames.

    frames: (N, 3, H, W) in [0, 1]. Brightness/contrast/saturation factors are U[max(0, 1 − p), 1 + p]; the hue
    shift is U[−hue, hue] turns of the colour wheel (hue ≤ 0.5).
    """

    def factor(amount: float) -> float:
        return float(rng.uniform(max(0.0, 1 - amount), 1 + amount))

    operations = []
    if params.brightness > 0:
        brightness = factor(params.brightness)
        operations.append(lambda x: x * brightness)
    if params.contrast > 0:
        contrast = factor(params.contrast)
        operations.append(lambda x: contrast * x + (1 - contrast) * grayscale(x).mean(dim=(2, 3), keepdim=True))
    if params.saturation > 0:
        saturation = factor(params.saturation)
        operations.append(lambda x: saturation * x + (1 - saturation) * grayscale(x))
    if params.hue > 0:
        shift = float(rng.uniform(-params.hue, params.hue))

        def rotate_hue(x: torch.Tensor) -> torch.Tensor:
            hsv = rgb_to_hsv(x)
            hsv = torch.cat([(hsv[:, :1] + shift) % 1.0, hsv[:, 1:]], dim=1)
            return hsv_to_rgb(hsv)

        operations.append(rotate_hue)
    for index in rng.permutation(len(operations)):
        frames = operations[index](frames).clamp(0, 1)
    return frames


def random_resize_crop(
    frames: torch.Tensor, ratio: tuple[float, ...] | None, crop: tuple[int, ...] | None, rng: np.random.Generator
) -> torch.Tensor:
    """Scale by r ~ U[ratio], then take a random crop of ``crop`` (zero-padded where the image is smaller),
    then back to the input size. frames: (N, C, H, W) -> (N, C, H, W)."""
    height, width = frames.shape[2:]
    if ratio is not None:
        scale = float(rng.uniform(ratio[0], ratio[-1]))
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        frames = F.interpolate(frames, size=size, mode="bilinear", align_corners=False, antialias=scale < 1)
    crop_height, crop_width = (int(crop[0]), int(crop[-1])) if crop is not None else (height, width)
    pad_height, pad_width = max(0, crop_height - frames.shape[2]), max(0, crop_width - frames.shape[3])
    if pad_height or pad_width:
        top, left = int(rng.integers(pad_height + 1)), int(rng.integers(pad_width + 1))
        frames = F.pad(frames, (left, pad_width - left, top, pad_height - top))
    top = int(rng.integers(frames.shape[2] - crop_height + 1))
    left = int(rng.integers(frames.shape[3] - crop_width + 1))
    frames = frames[:, :, top : top + crop_height, left : left + crop_width]
    if frames.shape[2:] != (height, width):
        frames = F.interpolate(frames, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return frames


def augment_pair(frames: torch.Tensor, params: AugmentationParams, rng: np.random.Generator) -> torch.Tensor:
    """frames: (2, 3, H, W) in [0, 1], (source, driving) in time order -> the augmented pair, same shape.

    Time flip swaps the pair (the model then learns to move both ways); horizontal flip mirrors both frames.
    """
    if params.resize_param is not None or params.crop_param is not None:
        frames = random_resize_crop(
            frames,
            params.resize_param.ratio if params.resize_param is not None else None,
            params.crop_param.size if params.crop_param is not None else None,
            rng,
        )
    flips = params.flip_param
    if flips is not None and flips.horizontal_flip and rng.random() < 0.5:
        frames = frames.flip(-1)
    if flips is not None and flips.time_flip and rng.random() < 0.5:
        frames = frames.flip(0)
    if params.jitter_param is not None:
        frames = color_jitter(frames, params.jitter_param, rng)
    return frames.clamp(0, 1).contiguous()
