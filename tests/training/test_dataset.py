"""Training pairs from clip folders and videos; augmentation; the resumable distributed sampler."""

from __future__ import annotations

import logging

import av
import numpy as np
import pytest
import torch
from PIL import Image

from animate_cli.config import AugmentationParams, FlipParams, JitterParams
from animate_cli.errors import BadInputError
from animate_cli.training.augment import augment_pair, color_jitter
from animate_cli.training.dataset import EpochSampler, FramesDataset, list_clips
from tests.training.tiny import make_dataset, square_clip, write_frame_folder


def write_mp4(path, clip: np.ndarray) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = clip.shape[2], clip.shape[1], "yuv420p"
        for frame in clip:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_items_are_pairs_of_frames_in_unit_range(tmp_path):
    make_dataset(tmp_path, clips=3, frames=5)
    dataset = FramesDataset(tmp_path, frame_size=(64, 64), num_repeats=2)
    assert len(dataset) == 6 and dataset.num_clips == 3  # the .npz files beside the clips are not clips
    item = dataset[4]
    assert set(item) == {"source", "driving"}
    for frame in item.values():
        assert frame.shape == (3, 64, 64) and frame.dtype == torch.float32
        assert 0 <= frame.min() and frame.max() <= 1
    # without augmentation the frames are exactly the files' pixels / 255
    clip = square_clip(5, seed=1)
    frames = {tuple(clip[t].reshape(-1)[:50]) for t in range(5)}
    pixels = (item["source"].permute(1, 2, 0).reshape(-1)[:50] * 255).round().to(torch.uint8).tolist()
    assert tuple(pixels) in frames


def test_draws_repeat_for_the_same_seed_epoch_and_index(tmp_path):
    make_dataset(tmp_path, clips=2, frames=30)
    dataset = FramesDataset(tmp_path, frame_size=(64, 64), seed=5)
    first = dataset[1]
    assert all(torch.equal(first[k], dataset[1][k]) for k in first)
    assert all(torch.equal(first[k], dataset[(0, 1)][k]) for k in first)
    assert len({dataset[(epoch, 1)]["driving"].sum().item() for epoch in range(6)}) > 1


def test_frames_are_resized_to_the_frame_shape(tmp_path):
    write_frame_folder(tmp_path / "train" / "big", square_clip(3, size=80))
    item = FramesDataset(tmp_path, frame_size=(64, 64))[0]
    assert item["source"].shape == (3, 64, 64)


def test_video_files_and_image_strips_are_clips(tmp_path, caplog):
    train = tmp_path / "train"
    train.mkdir()
    write_mp4(train / "a.mp4", square_clip(6))
    frames = [Image.fromarray(f) for f in square_clip(4, seed=2)]
    frames[0].save(train / "b.gif", save_all=True, append_images=frames[1:], duration=100)
    Image.fromarray(np.concatenate(list(square_clip(3, seed=3)), axis=1)).save(train / "c.png")  # 3 frames side by side
    (train / "notes.json").write_text("{}")
    (train / "frames.csv").write_text("a,b")
    assert [p.name for p in list_clips(train)] == ["a.mp4", "b.gif", "c.png"]
    dataset = FramesDataset(tmp_path, frame_size=(64, 64))
    assert [dataset.reader.frame_count(clip[0]) for clip in dataset.entries] == [6, 4, 3]
    with caplog.at_level(logging.WARNING):
        for index in range(3):
            assert dataset[index]["driving"].shape == (3, 64, 64)
    assert not caplog.records  # nothing was skipped


def test_identity_sampling_groups_clips_by_name_before_hash(tmp_path):
    for name in ("alice#1", "alice#2", "bob#1"):
        write_frame_folder(tmp_path / "train" / name, square_clip(2))
    dataset = FramesDataset(tmp_path, frame_size=(64, 64), id_sampling=True, num_repeats=3)
    assert [[clip.name for clip in entry] for entry in dataset.entries] == [["alice#1", "alice#2"], ["bob#1"]]
    assert len(dataset) == 6


def test_a_corrupt_clip_is_skipped_with_one_warning(tmp_path, caplog):
    make_dataset(tmp_path, clips=2, corrupt=True)
    write_mp4(tmp_path / "a.mp4", square_clip(8))
    data = (tmp_path / "a.mp4").read_bytes()
    (tmp_path / "train" / "truncated.mp4").write_bytes(data[: len(data) // 3])
    dataset = FramesDataset(tmp_path, frame_size=(64, 64), num_repeats=5)
    with caplog.at_level(logging.WARNING, logger="animate_cli.training.dataset"):
        items = [dataset[(epoch, i)] for epoch in range(3) for i in range(len(dataset))]
    assert all(item["source"].shape == (3, 64, 64) for item in items)
    warned = sorted(record.getMessage().split(":")[0] for record in caplog.records)
    bad = ("broken_clip", "truncated.mp4")
    assert warned == sorted(f"skipping unreadable clip {tmp_path / 'train' / name}" for name in bad)


def test_only_corrupt_clips_or_no_clips_are_errors(tmp_path):
    (tmp_path / "train" / "bad").mkdir(parents=True)
    (tmp_path / "train" / "bad" / "000000.png").write_text("text")
    dataset = FramesDataset(tmp_path, frame_size=(64, 64))
    with pytest.raises(BadInputError, match="no readable clip"):
        dataset[0]
    with pytest.raises(BadInputError, match="no 'test' folder"):
        FramesDataset(tmp_path, split="test")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(BadInputError, match="no clips"):
        FramesDataset(tmp_path / "empty")


def test_augmentation_treats_both_frames_alike():
    frame = torch.rand(1, 3, 16, 16)
    pair = frame.expand(2, -1, -1, -1).clone()
    params = AugmentationParams(
        flip_param=FlipParams(horizontal_flip=True, time_flip=True),
        jitter_param=JitterParams(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.3),
    )
    for seed in range(8):
        out = augment_pair(pair, params, np.random.default_rng(seed))
        assert out.shape == pair.shape and torch.allclose(out[0], out[1])
        assert not torch.allclose(out[0], frame[0])
    time_flip = AugmentationParams(flip_param=FlipParams(time_flip=True))
    firsts = set()
    for seed in range(10):
        out = augment_pair(torch.stack([frame[0], 1 - frame[0]]), time_flip, np.random.default_rng(seed))
        assert torch.allclose(out[0] + out[1], torch.ones_like(out[0]))  # the same two frames, in some order
        firsts.add(bool(torch.equal(out[0], frame[0])))
    assert firsts == {True, False}


def test_hue_jitter_keeps_grey_grey_and_brightness_scales():
    grey = torch.full((1, 3, 4, 4), 0.5)
    assert torch.allclose(color_jitter(grey, JitterParams(hue=0.5), np.random.default_rng(0)), grey, atol=1e-6)
    out = color_jitter(grey, JitterParams(brightness=0.5), np.random.default_rng(0))
    assert torch.allclose(out, out.flatten()[0].expand_as(out)) and 0.25 <= out.flatten()[0] <= 0.75


def test_crop_and_resize_keep_the_frame_size():
    from animate_cli.config import CropParams, ResizeParams

    params = AugmentationParams(crop_param=CropParams(size=(56, 56)), resize_param=ResizeParams(ratio=(0.8, 1.2)))
    for seed in range(4):
        out = augment_pair(torch.rand(2, 3, 64, 64), params, np.random.default_rng(seed))
        assert out.shape == (2, 3, 64, 64)


def test_sampler_shards_the_epoch_and_starts_mid_epoch():
    data = list(range(10))
    shards = [EpochSampler(data, num_replicas=2, rank=r, seed=3) for r in range(2)]
    for shard in shards:
        shard.set_epoch(4)
    full = [list(shard) for shard in shards]
    assert {epoch for epoch, _ in full[0] + full[1]} == {4}
    assert sorted(index for _, index in full[0] + full[1]) == data
    shards[1].set_start(2)
    assert list(shards[1]) == full[1][2:] and len(shards[1]) == 3
    other = EpochSampler(data, num_replicas=1, rank=0, seed=3)
    other.set_epoch(5)
    assert [index for _, index in other] != [index for _, index in full[0] + full[1]]
