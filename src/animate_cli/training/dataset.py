"""Training pairs from a folder of clips in the FOMM layout.

``DIR/train/`` and ``DIR/test/`` hold one entry per clip: a folder of frame images (natural name order), a
video file, or (as published for mgif and bair) one image holding the frames side by side. Files that are not
clips (``.npz``, ``.csv``, ``.json`` written by ``animate data synth``, hidden files) are ignored.

Every sample is deterministic in (seed, epoch, index), whichever worker process draws it, so a resumed run sees
the same pairs as an uninterrupted one: the sampler hands the dataset (epoch, index) keys, which also lets the
loader keep its worker processes (and their record of unreadable clips) from one epoch to the next.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from animate_cli.config import AugmentationParams
from animate_cli.errors import BadInputError
from animate_cli.media.images import is_image_path, read_image
from animate_cli.media.resize import resize_frame
from animate_cli.media.video import natural_key, open_video
from animate_cli.training.augment import augment_pair

LOG = logging.getLogger(__name__)
VIDEO_SUFFIXES = frozenset({".mp4", ".gif", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ogv"})
# a sample that keeps landing on unreadable clips gives up after this many draws
MAX_DRAWS = 100


class UnreadableClip(Exception):
    """A clip that cannot give the frames asked for (corrupt, truncated, empty)."""


def is_clip(path: Path) -> bool:
    if path.name.startswith("."):
        return False
    if path.is_dir():
        return True
    return path.suffix.lower() in VIDEO_SUFFIXES or is_image_path(path)


def list_clips(folder: Path) -> list[Path]:
    """The clips directly inside ``folder``, in natural name order."""
    return sorted((p for p in folder.iterdir() if is_clip(p)), key=lambda p: natural_key(p.name))


def identity(clip: Path) -> str:
    """The identity a clip shows: its name up to the first ``#`` (the published vox/taichi naming)."""
    return clip.name.split("#", 1)[0] if clip.is_dir() else clip.stem.split("#", 1)[0]


class ClipReader:
    """Reads chosen frames of a clip as (H, W, 3) uint8 at the training size; caches frame counts.

    Frame folders read just the requested files; videos decode from the start up to the last requested frame
    (training clips are short). One reader lives in each worker process.
    """

    def __init__(self, height: int, width: int):
        self.size = (width, height)
        self._counts: dict[Path, int] = {}

    def frame_count(self, clip: Path) -> int:
        if clip not in self._counts:
            self._counts[clip] = self._count(clip)
        return self._counts[clip]

    def _count(self, clip: Path) -> int:
        if clip.is_dir():
            count = len(_frame_files(clip))
        elif is_image_path(clip):
            height, width = read_image(clip).shape[:2]
            count = width // self._strip_frame_width(height)
        else:
            with open_video(clip) as reader:
                count = reader.info.frame_count or sum(1 for _ in reader)
        if count < 1:
            raise UnreadableClip(f"{clip}: no frames")
        return count

    def _strip_frame_width(self, height: int) -> int:
        # a strip's frames have the training aspect ratio at the strip's height
        return max(1, round(height * self.size[0] / self.size[1]))

    def frames(self, clip: Path, indices: list[int]) -> list[np.ndarray]:
        if clip.is_dir():
            files = _frame_files(clip)
            images = [read_image(files[i]) for i in indices]
        elif is_image_path(clip):
            strip = read_image(clip)
            width = self._strip_frame_width(strip.shape[0])
            images = [strip[:, i * width : (i + 1) * width] for i in indices]
        else:
            images = self._video_frames(clip, indices)
        return [resize_frame(np.ascontiguousarray(image), self.size) for image in images]

    def _video_frames(self, clip: Path, indices: list[int]) -> list[np.ndarray]:
        wanted = set(indices)
        found: dict[int, np.ndarray] = {}
        last: np.ndarray | None = None
        count = 0
        with open_video(clip) as reader:
            for frame in reader:
                last, count = frame.image, frame.index + 1
                if frame.index in wanted:
                    found[frame.index] = frame.image
                if count > max(indices):
                    break
        if last is None:
            raise UnreadableClip(f"{clip}: no frames")
        if len(found) < len(wanted):
            # the container's frame count was an overestimate: remember the true one, use the last frame
            self._counts[clip] = count
            found.update({i: last for i in wanted if i not in found})
        return [found[i] for i in indices]


def _frame_files(folder: Path) -> list[Path]:
    names = sorted((p.name for p in folder.iterdir() if p.is_file() and is_image_path(p)), key=natural_key)
    return [folder / name for name in names if not name.startswith(".")]


class FramesDataset(Dataset):
    """Pairs of frames (source, driving) drawn from one clip each.

    Item ``(epoch, i)`` (or ``i``, epoch 0): ``{"source": (3, H, W), "driving": (3, H, W)}`` float32 in [0, 1],
    two frames at random sorted
    indices (drawn with replacement, as published) of clip ``i mod n``, resized to ``frame_size`` = (H, W) and
    augmented alike. With ``id_sampling`` the n entries are identities (clip names before ``#``) and each item
    draws one of that identity's clips. ``num_repeats`` repeats the n entries within one epoch.

    An unreadable clip is logged once (a warning on this module's logger) and never read again by that process
    (each loader worker keeps its own record); the item draws another entry instead.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        frame_size: tuple[int, int] = (256, 256),
        id_sampling: bool = False,
        num_repeats: int = 1,
        augmentation: AugmentationParams | None = None,
        seed: int = 0,
    ):
        folder = Path(root) / split
        if not folder.is_dir():
            raise BadInputError(f"{root}: no '{split}' folder (expected the FOMM layout {root}/train/, {root}/test/)")
        clips = list_clips(folder)
        if not clips:
            raise BadInputError(f"{folder}: no clips (frame folders or video files)")
        groups: dict[str, list[Path]] = defaultdict(list)
        for clip in clips:
            groups[identity(clip) if id_sampling else clip.name].append(clip)
        self.entries = [groups[name] for name in sorted(groups, key=natural_key)]
        self.num_clips = len(clips)
        self.num_repeats = num_repeats
        self.augmentation = augmentation or AugmentationParams()
        self.seed = seed
        self.reader = ClipReader(*frame_size)
        self._bad: set[Path] = set()

    def __len__(self) -> int:
        return len(self.entries) * self.num_repeats

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch, index])
        entry = index % len(self.entries)
        for _ in range(MAX_DRAWS):
            candidates = self.entries[entry]
            clip = candidates[int(rng.integers(len(candidates)))]
            if clip not in self._bad:
                try:
                    count = self.reader.frame_count(clip)
                    indices = sorted(int(i) for i in rng.integers(count, size=2))
                    images = self.reader.frames(clip, indices)
                except Exception as error:  # noqa: BLE001 - decoders fail in many ways; each means "skip this clip"
                    self._bad.add(clip)
                    LOG.warning("skipping unreadable clip %s: %s", clip, error)
                else:
                    pair = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)
                    pair = augment_pair(pair, self.augmentation, rng)
                    return {"source": pair[0], "driving": pair[1]}
            if len(self._bad) == self.num_clips:
                break
            entry = int(rng.integers(len(self.entries)))
        raise BadInputError(f"no readable clip found for sample {index} ({len(self._bad)} clips are unreadable)")


class EpochSampler(DistributedSampler):
    """``DistributedSampler`` (seeded shuffle per epoch, one shard per process) that yields (epoch, index) keys
    and can start mid-epoch: ``start`` skips that many of this process's indices, so a resumed run continues
    the interrupted epoch.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self.start = 0

    def set_start(self, start: int) -> None:
        self.start = start

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())
        return iter([(self.epoch, index) for index in indices[self.start :]])

    def __len__(self) -> int:
        return self.num_samples - self.start
