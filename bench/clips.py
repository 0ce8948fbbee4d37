"""Driving clips for the benchmarks: moving puppets with a sine sound track, written with PyAV."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from animate_cli.data.puppets import render_clip, sample_identity, sample_motion


def make_driving_clip(path: Path, frames: int, size: int, fps: int = 25, seed: int = 0) -> Path:
    """An H.264 mp4 of ``frames`` puppet frames at ``size``x``size`` with an AAC sine track of the same length.

    Rendered in chunks so a 3,000-frame clip never sits in memory.
    """
    rng = np.random.default_rng(seed)
    identity = sample_identity(rng)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=44100)
        audio.codec_context.layout = "mono"
        chunk = 100
        for start in range(0, frames, chunk):
            count = min(chunk, frames - start)
            motion = sample_motion(np.random.default_rng([seed, start]), count, fps)
            images, _ = render_clip(identity, motion, size)
            for image in images:
                for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        rate = 44100
        samples = (0.2 * np.sin(2 * np.pi * 440 * np.arange(round(frames / fps * rate)) / rate)).astype(np.float32)
        for first in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, first:first + 1024], format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = first
            frame.time_base = Fraction(1, rate)
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)
    return path
