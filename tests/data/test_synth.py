"""Writing a data set: layout, determinism, pairs, and ground truth that re-renders the frames."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from animate_cli.data import puppets
from animate_cli.data.synth import SynthOptions, synthesize
from animate_cli.errors import BadInputError

OPTIONS = SynthOptions(size=64, videos=5, frames=4, seed=3, test_fraction=0.4, pairs=2)


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def read_frames(folder: Path) -> np.ndarray:
    return np.stack([np.asarray(Image.open(path)) for path in sorted(folder.glob("*.png"))])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "puppets"
    summary = synthesize(out, OPTIONS)
    assert summary["train"] == 3 and summary["test"] == 2 and summary["pairs"] == 2
    return out


def test_layout_is_fomm_frame_folders_with_ground_truth_beside(dataset):
    description = json.loads((dataset / "dataset.json").read_text())
    assert description["size"] == 64 and description["frames"] == 4 and description["seed"] == 3
    assert description["joint_names"] == list(puppets.JOINT_NAMES)
    assert description["part_names"] == list(puppets.PART_NAMES)
    assert description["train"] == ["clip_00000", "clip_00001", "clip_00002"]
    assert description["test"] == ["clip_00003", "clip_00004"]
    for split in ("train", "test"):
        for name in description[split]:
            clip = dataset / split / name
            assert sorted(p.name for p in clip.iterdir()) == [f"{t:06d}.png" for t in range(4)]
            truth = np.load(dataset / split / f"{name}.npz")
            assert truth["affines"].shape == (4, puppets.NUM_PARTS, 2, 3)
            assert truth["joints"].shape == (4, puppets.NUM_JOINTS, 2)
            assert truth["labels"].shape == (4, 64, 64) and truth["labels"].dtype == np.uint8
            assert int(truth["size"]) == 64 and float(truth["fps"]) == 25.0


def test_ground_truth_re_renders_the_frames(dataset):
    truth = np.load(dataset / "test" / "clip_00003.npz")
    identity = puppets.Identity.from_json(str(truth["identity"]))
    motion = puppets.motion_from_truth(truth)
    frames, again = puppets.render_clip(identity, motion, int(truth["size"]))
    np.testing.assert_array_equal(frames, read_frames(dataset / "test" / "clip_00003"))
    np.testing.assert_array_equal(again["labels"], truth["labels"])


def test_pairs_render_the_source_identity_with_the_driving_motion(dataset):
    with open(dataset / "test" / "pairs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2
    for row in rows:
        source, driving, target = (dataset / row[key] for key in ("source", "driving", "target"))
        assert source != driving and source.parent.name == driving.parent.name == "test"
        target_frames = read_frames(target)
        assert len(target_frames) == len(read_frames(driving))
        # frame 0 of the target is the source's frame 0, byte for byte
        np.testing.assert_array_equal(target_frames[0], read_frames(source)[0])
        target_truth = np.load(target.with_suffix(".npz"))
        source_truth = np.load(source.with_suffix(".npz"))
        driving_truth = np.load(driving.with_suffix(".npz"))
        assert str(target_truth["identity"]) == str(source_truth["identity"])
        np.testing.assert_allclose(
            target_truth["angles"] - target_truth["angles"][0],
            driving_truth["angles"] - driving_truth["angles"][0],
            atol=1e-12,
        )


def test_same_seed_gives_identical_files_and_another_seed_differs(dataset, tmp_path):
    again = tmp_path / "again"
    synthesize(again, OPTIONS)
    assert files(again) == files(dataset)
    other = tmp_path / "other"
    synthesize(other, replace(OPTIONS, seed=4))
    reference, different = files(dataset), files(other)
    assert reference.keys() == different.keys()
    assert reference["train/clip_00000/000000.png"] != different["train/clip_00000/000000.png"]
    assert reference["train/clip_00000.npz"] != different["train/clip_00000.npz"]


def test_refuses_a_non_empty_folder_and_overwrite_replaces_only_the_data_set(tmp_path):
    out = tmp_path / "out"
    options = SynthOptions(size=32, videos=3, frames=2)
    synthesize(out, options)
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(BadInputError, match="not empty"):
        synthesize(out, options)
    synthesize(out, SynthOptions(size=32, videos=1, frames=2, test_fraction=0.0), overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me"
    assert not any((out / "test").iterdir())
    assert sorted(p.name for p in (out / "train").iterdir()) == ["clip_00000", "clip_00000.npz"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"videos": 0}, "--videos"),
        ({"frames": 0}, "--frames"),
        ({"test_fraction": 1.5}, "--test-fraction"),
        ({"videos": 2, "pairs": 3}, "--pairs"),
        ({"format": "mp4", "size": 63}, "even"),
        ({"seed": -1}, "--seed"),
    ],
)
def test_rejects_bad_options(tmp_path, changes, message):
    with pytest.raises(BadInputError, match=message):
        synthesize(tmp_path / "out", replace(OPTIONS, **changes))
    assert not (tmp_path / "out").exists()


def test_mp4_format_writes_decodable_videos(tmp_path):
    import av

    out = tmp_path / "mp4"
    synthesize(out, SynthOptions(size=64, videos=2, frames=5, test_fraction=0.5, format="mp4"))
    video = out / "train" / "clip_00000.mp4"
    with av.open(str(video)) as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(decoded) == 5 and decoded[0].shape == (64, 64, 3)
    assert (out / "train" / "clip_00000.npz").exists()
