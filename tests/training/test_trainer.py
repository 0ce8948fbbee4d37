"""The training step, saved training state, resuming, stopping on signals."""

from __future__ import annotations

import json
import logging
import signal

import pytest
import torch

from animate_cli.checkpoint import TRAINING_STATE_PREFIX, load_checkpoint, read_safetensors
from animate_cli.errors import BadInputError
from animate_cli.training.losses import L1PyramidLoss
from animate_cli.training.trainer import Trainer, scheduled_learning_rate, train
from tests.training.tiny import load_tiny_config, make_dataset, square_clip, write_config


def fixed_batch(size: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """source = frame 0, driving = a later frame of the moving-square clips: (size, 3, 64, 64)."""
    clips = [torch.from_numpy(square_clip(6, seed=i)).permute(0, 3, 1, 2).float() / 255 for i in range(size)]
    return torch.stack([c[0] for c in clips]), torch.stack([c[4] for c in clips])


def make_trainer(seed: int = 0, **options) -> Trainer:
    return Trainer(load_tiny_config(**options), reconstruction=L1PyramidLoss(10), seed=seed)


def test_steps_on_a_fixed_batch_lower_the_loss():
    trainer = make_trainer(lr=1e-3)
    source, driving = fixed_batch()
    history = [trainer.train_step(source, driving).losses for _ in range(12)]
    assert set(history[0]) == {"reconstruction", "equivariance_value", "equivariance_jacobian"}
    total = [sum(losses.values()) for losses in history]
    assert sum(total[-3:]) < 0.8 * sum(total[:3]), total
    assert history[-1]["reconstruction"] < history[0]["reconstruction"]


def test_adversarial_step_trains_the_discriminator_too():
    trainer = make_trainer(generator_gan=1)
    before = {k: v.clone() for k, v in trainer.model.discriminator.state_dict().items()}
    losses = trainer.train_step(*fixed_batch()).losses
    assert {"generator_gan", "feature_matching", "discriminator_gan"} <= set(losses)
    after = trainer.model.discriminator.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert trainer.optimizers["discriminator"].state  # it stepped
    assert all(p.requires_grad for p in trainer.model.discriminator.parameters())


def test_zeroth_order_model_has_no_jacobian_loss():
    trainer = make_trainer(first_order=False)
    assert set(trainer.train_step(*fixed_batch()).losses) == {"reconstruction", "equivariance_value"}


def test_keypoint_separation_spreads_collapsed_keypoints():
    """A heavy separation weight moves the keypoints of a fresh detector apart within a few steps."""
    trainer = make_trainer(lr=1e-2, keypoint_separation=1000)
    source, driving = fixed_batch()

    def spread() -> float:
        with torch.no_grad():
            kp = trainer.model.kp_detector(driving).value
        return torch.cdist(kp, kp).mean().item()

    before = spread()
    history = [trainer.train_step(source, driving).losses for _ in range(8)]
    assert "keypoint_separation" in history[0]
    assert history[-1]["keypoint_separation"] < history[0]["keypoint_separation"]
    assert spread() > before


def test_the_schedule_lowers_the_rate_tenfold_at_each_milestone_reached():
    assert scheduled_learning_rate(2e-4, [12], 11) == pytest.approx(2e-4)
    assert scheduled_learning_rate(2e-4, [12], 12) == pytest.approx(2e-5)
    assert [scheduled_learning_rate(1.0, [3, 1], epoch) for epoch in range(5)] == pytest.approx(
        [1.0, 0.1, 0.1, 0.01, 0.01]
    )


def test_a_resumed_run_follows_the_schedule_of_the_config_it_is_given(tmp_path):
    source, driving = fixed_batch()
    trainer = make_trainer(milestones=(1,))
    trainer.train_step(source, driving)
    trainer.end_epoch()
    assert trainer.learning_rates()["generator"] == pytest.approx(2e-5)
    trainer.save(tmp_path, {"purpose": "test"})
    # resumed with the milestone moved later (to train longer): back to the full rate until epoch 3
    longer = make_trainer(milestones=(3,))
    longer.resume(tmp_path / "checkpoint.safetensors")
    assert longer.epoch == 1
    assert longer.learning_rates() == pytest.approx({"generator": 2e-4, "kp_detector": 2e-4})
    longer.end_epoch()
    assert longer.learning_rates()["kp_detector"] == pytest.approx(2e-4)
    longer.end_epoch()
    assert longer.learning_rates()["kp_detector"] == pytest.approx(2e-5)


def test_resumed_trainer_continues_exactly(tmp_path):
    source, driving = fixed_batch()
    trainer = make_trainer(generator_gan=1)
    for _ in range(2):
        trainer.train_step(source, driving)
    trainer.end_epoch()  # move the schedule past milestone 1: lr ×0.1
    trainer.train_step(source, driving)
    trainer.save(tmp_path, {"purpose": "test"})

    resumed = make_trainer(seed=123, generator_gan=1)  # other initial weights: all must come from the file
    resumed.resume(tmp_path / "checkpoint.safetensors")
    assert (resumed.step, resumed.epoch, resumed.epoch_samples) == (3, 1, 2)
    assert resumed.learning_rates() == trainer.learning_rates() == pytest.approx(
        {"generator": 2e-5, "kp_detector": 2e-5, "discriminator": 2e-5}
    )
    for name, optimizer in trainer.optimizers.items():
        original, restored = optimizer.state_dict(), resumed.optimizers[name].state_dict()
        assert original["param_groups"] == restored["param_groups"]
        assert original["state"].keys() == restored["state"].keys()
        for index, values in original["state"].items():
            for key, value in values.items():
                assert torch.equal(value, restored["state"][index][key]), (name, index, key)
    # one more step from either gives the same weights
    trainer.train_step(source, driving)
    resumed.train_step(source, driving)
    for key, value in trainer.model.state_dict().items():
        assert torch.allclose(value.float(), resumed.model.state_dict()[key].float(), atol=1e-6), key


def test_checkpoint_files(tmp_path):
    make_dataset(tmp_path / "data", clips=2)
    config = write_config(tmp_path, generator_gan=1)
    result = train(config, tmp_path / "data", tmp_path / "run", max_steps=2, workers=0, device="cpu",
                   reconstruction_loss="l1", seed=4)
    tensors, metadata = read_safetensors(result.checkpoint)
    assert any(k.startswith(f"{TRAINING_STATE_PREFIX}optimizer_generator.state.0.exp_avg") for k in tensors)
    assert any(k.startswith("discriminator.") for k in tensors)
    state = json.loads(metadata["training_state"])
    assert state["step"] == 2 and set(state["optimizers"]) == {"generator", "kp_detector", "discriminator"}
    provenance = json.loads(metadata["provenance"])
    assert provenance["steps"] == 2 and provenance["reconstruction_loss"] == "l1" and provenance["config"] == "tiny"
    assert provenance["data"] == str((tmp_path / "data").resolve()) and provenance["epochs"] == 1.0
    model_tensors, model_metadata = read_safetensors(result.model)
    assert not any(k.startswith((TRAINING_STATE_PREFIX, "discriminator.")) for k in model_tensors)
    assert "training_state" not in model_metadata and model_metadata["align_corners"] == "true"
    model = load_checkpoint(result.model)
    assert torch.equal(model.generator.final.weight, tensors["generator.final.weight"])


def test_keep_every_keeps_the_model_of_every_nth_step(tmp_path):
    make_dataset(tmp_path / "data", clips=2)
    result = train(write_config(tmp_path), tmp_path / "data", tmp_path / "run", max_steps=5, workers=0,
                   device="cpu", reconstruction_loss="l1", checkpoint_every=1000, keep_every=2)
    snapshots = sorted(path.name for path in (tmp_path / "run" / "snapshots").iterdir())
    assert snapshots == ["model_step_0000002.safetensors", "model_step_0000004.safetensors"]
    early = load_checkpoint(tmp_path / "run" / "snapshots" / snapshots[0])
    final = load_checkpoint(result.model)
    assert early.provenance["steps"] == 2 and final.provenance["steps"] == 5
    assert not torch.equal(early.generator.final.weight, final.generator.final.weight)
    with pytest.raises(BadInputError, match="keep_every must be at least 1"):
        train(write_config(tmp_path), tmp_path / "data", tmp_path / "other", keep_every=0)


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    """4 steps per epoch with a milestone at epoch 1: resuming at step 3 crosses the lr drop and the epoch."""
    make_dataset(tmp_path / "data", clips=2, frames=6)
    config = write_config(tmp_path)
    options = dict(workers=0, device="cpu", reconstruction_loss="l1", batch_size=1, seed=2)
    straight = train(config, tmp_path / "data", tmp_path / "straight", max_steps=6, **options)
    first = train(config, tmp_path / "data", tmp_path / "resumed", max_steps=3, **options)
    second = train(config, tmp_path / "data", tmp_path / "resumed", max_steps=6, **options)
    assert (first.steps, second.start_step, second.steps, straight.steps) == (3, 3, 6, 6)
    assert second.epochs == straight.epochs == 1.5
    expected, _ = read_safetensors(straight.checkpoint)
    found, _ = read_safetensors(second.checkpoint)
    assert expected.keys() == found.keys()
    for key in expected:
        assert torch.allclose(expected[key].double(), found[key].double(), atol=1e-6), key
    records = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    starts = [r for r in records if r["event"] == "start"]
    assert [s["resumed"] for s in starts] == [False, True] and starts[1]["start_step"] == 3
    steps = [r["step"] for r in records if r["event"] == "step"]
    assert steps == [1, 3, 4, 6]
    assert [r["lr"]["generator"] for r in records if r["event"] == "step"] == pytest.approx([2e-4, 2e-4, 2e-5, 2e-5])


@pytest.mark.parametrize("workers", [0, 2])
def test_a_corrupt_clip_does_not_stop_training(tmp_path, workers, caplog):
    """A whole epoch draws every clip, the corrupt one included (in the loader's worker processes too)."""
    make_dataset(tmp_path / "data", clips=2, corrupt=True)
    config = write_config(tmp_path)
    with caplog.at_level(logging.WARNING, logger="animate_cli.training.dataset"):
        result = train(config, tmp_path / "data", tmp_path / "run", workers=workers, device="cpu",
                       reconstruction_loss="l1", epochs=2)
    assert result.steps == 6 and result.epochs == 2.0  # 3 clips × 2 repeats / batch 2, twice
    if not workers:  # worker processes log on their own stderr, out of caplog's sight
        assert [r.getMessage().split(":")[0] for r in caplog.records] == [
            f"skipping unreadable clip {tmp_path / 'data' / 'train' / 'broken_clip'}"
        ]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_then_stops(tmp_path, signum):
    class Stopped(BaseException):
        pass

    def stop(*_):
        raise Stopped

    make_dataset(tmp_path / "data", clips=2)
    config = write_config(tmp_path)
    previous = signal.signal(signum, stop)
    try:
        with pytest.raises(Stopped):
            train(config, tmp_path / "data", tmp_path / "run", max_steps=50, workers=0, device="cpu",
                  reconstruction_loss="l1", checkpoint_every=1000,
                  on_step=lambda report: report.step == 2 and signal.raise_signal(signum))
        assert signal.getsignal(signum) is stop  # the training handler is gone again
    finally:
        signal.signal(signum, previous)
    _, metadata = read_safetensors(tmp_path / "run" / "checkpoint.safetensors")
    assert json.loads(metadata["training_state"])["step"] == 2
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_bad_arguments_are_input_errors(tmp_path):
    make_dataset(tmp_path / "data", clips=1)
    config = write_config(tmp_path)
    common = dict(workers=0, device="cpu", reconstruction_loss="l1")
    with pytest.raises(BadInputError, match="no such data folder"):
        train(config, tmp_path / "missing", tmp_path / "run", **common)
    with pytest.raises(BadInputError, match="less than the batch size"):
        train(config, tmp_path / "data", tmp_path / "run", batch_size=4, **common)
    with pytest.raises(BadInputError, match="not divisible"):
        train(config, tmp_path / "data", tmp_path / "run", batch_size=2, accumulate=3, **common)
    with pytest.raises(BadInputError, match="unknown device|unsupported device"):
        train(config, tmp_path / "data", tmp_path / "run", max_steps=1, **{**common, "device": "tpu"})


def test_bf16_autocast_keeps_keypoints_and_equivariance_in_float32():
    trainer = Trainer(load_tiny_config(), reconstruction=L1PyramidLoss(10), autocast_dtype=torch.bfloat16)
    output = trainer.train_step(*fixed_batch(), visualize=True)
    assert output.outputs["kp_driving"].dtype == torch.float32
    assert all(torch.isfinite(torch.tensor(v)) for v in output.losses.values())
    # a bf16 value has 8 significant bits: a float32 loss almost never lands on a multiple of 2^-7
    assert output.losses["equivariance_jacobian"] * 128 % 1 != 0
