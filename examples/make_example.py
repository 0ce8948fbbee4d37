"""Rebuild examples/source.png and examples/driving.mp4 from a held-out puppet data set.

    animate data synth data/puppets-128-heldout --size 128 --videos 60 --frames 48 --seed 2 --test-fraction 0.5 --pairs 24
    python examples/make_example.py data/puppets-128-heldout

The source is frame 0 of one held-out clip and the driving video another clip (a different identity), given a
short melody as its sound track so the example shows the audio being carried into the result.
"""

from __future__ import annotations

import csv
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from animate_cli.media.images import read_image, write_image
from animate_cli.media.video import open_video
from animate_cli.media.writer import VideoWriter

EXAMPLES = Path(__file__).resolve().parent
PAIR = 0  # the first cross-identity pair of test/pairs.csv


def melody(path: Path, seconds: float, rate: int = 44100) -> Path:
    """A few soft sine notes (AAC in .m4a)."""
    notes = [261.63, 329.63, 392.0, 523.25, 392.0, 329.63]
    t = np.arange(round(seconds * rate)) / rate
    note = np.minimum((t / seconds * len(notes)).astype(int), len(notes) - 1)
    envelope = 0.5 - 0.5 * np.cos(2 * np.pi * ((t * len(notes) / seconds) % 1))
    samples = (0.2 * envelope * np.sin(2 * np.pi * np.take(notes, note) * t)).astype(np.float32)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.codec_context.layout = "mono"
        for first in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, first:first + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, first, Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def main(data_dir: Path) -> None:
    with open(data_dir / "test" / "pairs.csv", newline="") as handle:
        pair = list(csv.DictReader(handle))[PAIR]
    source_clip, driving_clip = data_dir / pair["source"], data_dir / pair["driving"]
    first_frame = sorted(source_clip.glob("*.png"))[0]
    write_image(EXAMPLES / "source.png", read_image(first_frame))
    with open_video(driving_clip) as reader, tempfile.TemporaryDirectory() as tmp:
        fps = reader.info.fps
        sound = melody(Path(tmp) / "melody.m4a", reader.info.frame_count / fps)
        with VideoWriter(EXAMPLES / "driving.mp4", fps=fps, audio_source=sound, overwrite=True) as writer:
            for frame in reader:
                writer.write(frame.image, time=frame.time)
    print(f"source.png <- {first_frame}\ndriving.mp4 <- {driving_clip} + melody")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
