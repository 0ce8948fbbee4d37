"""The published demo's way of animating, rebuilt on our networks, as the benchmark's baseline.

As ``demo.py``/``make_animation`` do it: every driving frame decoded into memory first, then one frame at a time,
fp32, the whole generator (source encoder included) and the visualisation-only ``deformed`` image recomputed for
every frame, frame 0's keypoints computed again for the reference, and all results kept until the end, then encoded
(no audio: the published demo muxes sound only with an extra flag and ffmpeg). On a GPU, as the demo does without
``--cpu``: the decoded video stays in host memory, each frame goes to the GPU alone and each prediction comes back
alone (a host-device synchronisation per frame).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from animate_cli.checkpoint import AnimationModel
from animate_cli.media.resize import fit_image
from animate_cli.media.video import open_video
from animate_cli.media.writer import VideoWriter
from animate_cli.motion import normalize_keypoints
from animate_cli.pipeline import image_to_tensor, tensor_to_images


def reference_animation(
    model: AnimationModel, source: np.ndarray, driving: Path, output: Path, device: torch.device
) -> dict[str, float]:
    """Returns seconds spent in total and in the model alone, and the frame count."""
    started = time.perf_counter()
    size = model.image_size
    with open_video(driving) as reader:
        fps = reader.info.fps
        frames = [fit_image(frame.image, size, "stretch") for frame in reader]  # the whole video in memory
    model = model.to(device)
    host = torch.device("cpu")
    predictions = []
    with torch.no_grad():
        model_started = time.perf_counter()
        source_tensor = image_to_tensor(source, device)
        driving_tensor = torch.stack([image_to_tensor(f, host)[0] for f in frames], dim=1).unsqueeze(0)
        kp_source = model.kp_detector(source_tensor)
        kp_initial = model.kp_detector(driving_tensor[:, :, 0].to(device))
        for index in range(driving_tensor.shape[2]):
            kp_driving = model.kp_detector(driving_tensor[:, :, index].to(device))
            kp_norm = normalize_keypoints(kp_source, kp_driving, kp_initial, adapt_movement_scale=True)
            out = model.generator(source_tensor, kp_source, kp_norm, with_deformed=True)
            predictions.append(out.prediction.permute(0, 2, 3, 1).cpu().numpy()[0])
        model_seconds = time.perf_counter() - model_started
    with VideoWriter(output, fps=fps, overwrite=True) as writer:
        for prediction in predictions:
            writer.write(tensor_to_images(torch.from_numpy(prediction).permute(2, 0, 1)[None])[0])
    return {"seconds": time.perf_counter() - started, "model_seconds": model_seconds, "frames": len(predictions)}
