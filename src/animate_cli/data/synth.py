"""Write a synthetic puppet data set in the FOMM layout, with exact ground truth beside every clip.

Layout (``OUT_DIR``)::

    dataset.json                 parameters, clip lists, part / joint / angle names
    train/clip_00000/000000.png  one folder of lossless frames per clip (``--format png``) ...
    train/clip_00000.npz         ... or train/clip_00000.mp4 (``--format mp4``), ground truth beside it
    test/clip_00080/ ...         test clips: the last ``SynthOptions.test_videos`` indices
    test/pairs.csv               ``source,driving,target``; paths relative to OUT_DIR
    pairs/pair_00000/ ...        cross-identity targets (+ .npz), kept out of test/ so that listing
                                 test/ yields only real test clips

Every clip draws its identity and motion from ``numpy.random.default_rng([seed, 0, clip_index])``, and
the pairs from ``default_rng([seed, 1])``, so a seed reproduces the data set byte for byte (PNG frames
and ``.npz`` files; x264 output is not promised to be bit-identical across machines).
"""

from __future__ import annotations

import csv
import json
import shutil
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from animate_cli.data import puppets
from animate_cli.errors import BadInputError

FORMATS = ("png", "mp4")
# Entries of OUT_DIR that a data set owns; --overwrite removes exactly these, nothing else.
OWNED_ENTRIES = ("dataset.json", "train", "test", "pairs")
_CLIP_STREAM, _PAIR_STREAM = 0, 1
# A fixed timestamp for the .npz members: numpy's savez stamps the current time, which breaks
# byte-identical output for a seed.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class SynthOptions:
    """What to generate. ``fps`` sets the motion's time scale (Hz) and the mp4 frame rate."""

    size: int = 256
    videos: int = 100
    frames: int = 64
    seed: int = 0
    test_fraction: float = 0.2
    pairs: int = 0
    format: str = "png"
    fps: float = 25.0

    @property
    def test_videos(self) -> int:
        """``round(videos * test_fraction)``, raised to 2 when pairs are asked for (a pair needs two clips)."""
        wanted = round(self.videos * self.test_fraction)
        return min(self.videos, max(wanted, 2) if self.pairs > 0 else wanted)

    def validate(self) -> None:
        """Raise :class:`BadInputError` for options that cannot make a data set."""
        if not 16 <= self.size <= 4096:
            raise BadInputError(f"--size must be between 16 and 4096 pixels, got {self.size}")
        if self.videos < 1:
            raise BadInputError(f"--videos must be at least 1, got {self.videos}")
        if self.frames < 1:
            raise BadInputError(f"--frames must be at least 1, got {self.frames}")
        if self.seed < 0:
            raise BadInputError(f"--seed must be non-negative, got {self.seed}")
        if not 0.0 <= self.test_fraction <= 1.0:
            raise BadInputError(f"--test-fraction must be between 0 and 1, got {self.test_fraction}")
        if not self.fps > 0:
            raise BadInputError(f"--fps must be positive, got {self.fps}")
        if self.format not in FORMATS:
            raise BadInputError(f"--format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.format == "mp4" and self.size % 2:
            raise BadInputError(f"--format mp4 needs an even --size (yuv420p), got {self.size}")
        available = self.test_videos * (self.test_videos - 1)
        if self.pairs < 0 or self.pairs > available:
            raise BadInputError(
                f"--pairs must be between 0 and {available} (ordered pairs of the {self.test_videos} test clips), "
                f"got {self.pairs}"
            )


def clip_name(index: int) -> str:
    return f"clip_{index:05d}"


def pair_name(index: int) -> str:
    return f"pair_{index:05d}"


def clip_rng(seed: int, index: int) -> np.random.Generator:
    """The generator that draws clip ``index``'s identity, then its motion."""
    return np.random.default_rng([seed, _CLIP_STREAM, index])


def prepare_output(out_dir: Path, overwrite: bool) -> None:
    """Create ``out_dir``; refuse a non-empty one unless ``overwrite``, which clears a previous data set."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"{out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise BadInputError(f"{out_dir} is not empty (pass --overwrite to replace the data set in it)")
        for name in OWNED_ENTRIES:
            entry = out_dir / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """``numpy.savez_compressed`` with fixed member timestamps, so equal arrays give equal bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def write_frames(path: Path, frames: np.ndarray, video_format: str, fps: float) -> Path:
    """Write (T, H, W, 3) uint8 frames as ``path/000000.png ...`` or ``path.mp4``; returns what was written."""
    if video_format == "png":
        path.mkdir()
        for t, frame in enumerate(frames):
            Image.fromarray(frame).save(path / f"{t:06d}.png", format="PNG")
        return path
    import av  # only mp4 output needs PyAV

    video = path.with_suffix(".mp4")
    with av.open(str(video), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return video


def _write_clip(
    folder: Path,
    name: str,
    identity: puppets.Identity,
    motion: puppets.Motion,
    options: SynthOptions,
    extra: Mapping[str, np.ndarray],
) -> Path:
    """Render one clip, write its frames and its ``.npz`` (ground truth plus ``extra``); returns the frames' path."""
    frames, truth = puppets.render_clip(identity, motion, options.size)
    written = write_frames(folder / name, frames, options.format, options.fps)
    write_npz(folder / f"{name}.npz", {**truth, **extra})
    return written


def synthesize(
    out_dir: Path,
    options: SynthOptions,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Generate the data set described by ``options`` into ``out_dir``.

    Args:
        overwrite: replace the data set in a non-empty ``out_dir`` (only :data:`OWNED_ENTRIES` are removed).
        progress: called as ``progress(done, total)`` after each clip or pair target.

    Returns:
        a JSON-ready summary: ``out_dir``, ``train``, ``test`` and ``pairs`` counts, ``frames``, ``size``,
        ``format``, ``seed``, ``seconds``.
    """
    options.validate()
    prepare_output(out_dir, overwrite)
    started = time.perf_counter()
    first_test = options.videos - options.test_videos
    splits = {"train": range(first_test), "test": range(first_test, options.videos)}
    total = options.videos + options.pairs
    done = 0
    test_clips: dict[int, tuple[puppets.Identity, puppets.Motion, Path]] = {}
    for split, indices in splits.items():
        folder = out_dir / split
        folder.mkdir()
        for index in indices:
            rng = clip_rng(options.seed, index)
            identity = puppets.sample_identity(rng)
            motion = puppets.sample_motion(rng, options.frames, options.fps)
            extra = {"seed": np.int64(options.seed), "clip_index": np.int64(index)}
            written = _write_clip(folder, clip_name(index), identity, motion, options, extra)
            if split == "test":
                test_clips[index] = (identity, motion, written)
            done += 1
            if progress is not None:
                progress(done, total)

    pair_rows = []
    if options.pairs:
        ordered = [(a, b) for a in splits["test"] for b in splits["test"] if a != b]
        chosen = np.random.default_rng([options.seed, _PAIR_STREAM]).choice(len(ordered), options.pairs, replace=False)
        pairs_folder = out_dir / "pairs"
        pairs_folder.mkdir()
        for number, choice in enumerate(chosen):
            source, driving = ordered[choice]
            identity, source_motion, source_path = test_clips[source]
            _, driving_motion, driving_path = test_clips[driving]
            motion = puppets.relative_motion(source_motion.pose(0), driving_motion)
            extra = {
                "seed": np.int64(options.seed),
                "source": np.str_(clip_name(source)),
                "driving": np.str_(clip_name(driving)),
            }
            target_path = _write_clip(pairs_folder, pair_name(number), identity, motion, options, extra)
            pair_rows.append([p.relative_to(out_dir).as_posix() for p in (source_path, driving_path, target_path)])
            done += 1
            if progress is not None:
                progress(done, total)
        with open(out_dir / "test" / "pairs.csv", "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["source", "driving", "target"])
            writer.writerows(pair_rows)

    description = {
        **asdict(options),
        "train": [clip_name(i) for i in splits["train"]],
        "test": [clip_name(i) for i in splits["test"]],
        "pairs_csv": "test/pairs.csv" if options.pairs else None,
        "pairs_note": "pairs.csv paths are relative to this folder; source = frame 0 of the source clip, "
        "target = source identity performing the driving clip's motion in relative form",
        "part_names": list(puppets.PART_NAMES),
        "depth_order": list(puppets.DEPTH_ORDER),
        "joint_names": list(puppets.JOINT_NAMES),
        "angle_names": list(puppets.ANGLE_NAMES),
        "labels": "part index + 1, 0 = background",
        "flow": "backward: frame_to(p) ~ frame_from(p + flow(p)), pixel centres at integer coordinates",
    }
    (out_dir / "dataset.json").write_text(json.dumps(description, indent=2) + "\n")
    return {
        "out_dir": str(out_dir),
        "train": len(splits["train"]),
        "test": len(splits["test"]),
        "pairs": options.pairs,
        "frames": options.frames,
        "size": options.size,
        "format": options.format,
        "seed": options.seed,
        "seconds": round(time.perf_counter() - started, 3),
    }
