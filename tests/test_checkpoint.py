"""Both checkpoint formats: round trips, the published layout, refusals with one clear message."""

import os

import pytest
import torch

from animate_cli.checkpoint import build_model, load_checkpoint, save_checkpoint
from animate_cli.config import config_to_yaml, load_config
from animate_cli.errors import CheckpointError
from tests.conftest import PARITY, perturbed_model, reference_or_skip


def outputs(model, seed=0):
    generator = torch.Generator().manual_seed(seed)
    source = torch.rand(1, 3, 64, 64, generator=generator)
    driving = torch.rand(2, 3, 64, 64, generator=generator)
    with torch.no_grad():
        kp_source = model.kp_detector(source)
        kp_driving = model.kp_detector(driving)
        return model.generator(source, kp_source, kp_driving).prediction


def write_published(path, model, prefix="", **extra):
    """The published layout: a dict of plain state dicts plus an epoch, as Logger.save_cpk writes it."""
    data = {
        "generator": {prefix + k: v for k, v in model.generator.state_dict().items()},
        "kp_detector": {prefix + k: v for k, v in model.kp_detector.state_dict().items()},
        "epoch": 3,
        **extra,
    }
    torch.save(data, path)


def test_safetensors_round_trip_gives_identical_outputs(tmp_path, tiny_config):
    model = perturbed_model(tiny_config)
    path = save_checkpoint(model, tmp_path / "m.safetensors", provenance={"steps": 12})
    loaded = load_checkpoint(path)
    assert loaded.config == tiny_config
    assert loaded.provenance == {"steps": 12}
    assert torch.equal(outputs(model), outputs(loaded))
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left nothing behind


def test_safetensors_records_the_grid_convention(tmp_path, tiny_config):
    model = perturbed_model(tiny_config, align_corners=False)
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    assert load_checkpoint(path).align_corners is False
    assert load_checkpoint(path, align_corners=True).generator.align_corners is True


@pytest.mark.parametrize("prefix", ["", "module."])
def test_published_format_round_trip(tmp_path, tiny_config, prefix):
    model = perturbed_model(tiny_config)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(config_to_yaml(tiny_config))
    write_published(tmp_path / "m.pth.tar", model, prefix=prefix)
    loaded = load_checkpoint(tmp_path / "m.pth.tar", config=config_path)
    assert loaded.align_corners is True  # published files default to their training-time convention
    assert torch.equal(outputs(model), outputs(loaded))


def test_legacy_serialization_loads(tmp_path, tiny_config):
    model = perturbed_model(tiny_config)
    data = {"generator": model.generator.state_dict(), "kp_detector": model.kp_detector.state_dict(), "epoch": 1}
    torch.save(data, tmp_path / "old.pth.tar", _use_new_zipfile_serialization=False)
    loaded = load_checkpoint(tmp_path / "old.pth.tar", config=tiny_config)
    assert torch.equal(outputs(model), outputs(loaded))


def test_a_checkpoint_for_another_config_names_the_first_mismatch():
    with pytest.raises(CheckpointError, match=r"does not fit config 'vox-256': shape mismatch for "
                       r"'kp_detector\.predictor\.encoder\.down_blocks\.0\.conv\.weight'"):
        load_checkpoint(reference_or_skip(PARITY / "small.pth.tar"), config="vox-256")


def test_zeroth_order_config_on_a_first_order_file_names_the_unexpected_key(tmp_path, tiny_config):
    model = perturbed_model(tiny_config)
    write_published(tmp_path / "m.pth.tar", model)
    data = tiny_config.to_dict()
    data["model_params"]["common_params"]["estimate_jacobian"] = False
    from animate_cli.config import parse_config

    with pytest.raises(CheckpointError, match=r"unexpected key 'kp_detector\.jacobian\.(weight|bias)'"):
        load_checkpoint(tmp_path / "m.pth.tar", config=parse_config(data))


def test_missing_key_is_named(tmp_path, tiny_config):
    model = perturbed_model(tiny_config)
    state = model.kp_detector.state_dict()
    del state["kp.bias"]
    torch.save({"generator": model.generator.state_dict(), "kp_detector": state}, tmp_path / "m.pth.tar")
    with pytest.raises(CheckpointError, match=r"missing key 'kp_detector\.kp\.bias'"):
        load_checkpoint(tmp_path / "m.pth.tar", config=tiny_config)


class RunsCode:
    """Unpickling this calls open(marker, 'w'): the side effect a malicious checkpoint would have."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path, tiny_config):
    marker = tmp_path / "pwned"
    model = build_model(tiny_config)
    write_published(tmp_path / "evil.pth.tar", model, payload=RunsCode(marker))
    with pytest.raises(CheckpointError, match="refused: unpickling it would need code"):
        load_checkpoint(tmp_path / "evil.pth.tar", config=tiny_config)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pth.tar", ".safetensors"])
def test_truncated_and_foreign_files(tmp_path, tiny_config, suffix):
    model = perturbed_model(tiny_config)
    path = tmp_path / f"m{suffix}"
    if suffix == ".safetensors":
        save_checkpoint(model, path)
    else:
        write_published(path, model)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path, config=tiny_config)
    path.write_text("hello, not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(path, config=tiny_config)


def test_other_refusals(tmp_path, tiny_config):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.safetensors")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pth.tar")
    with pytest.raises(CheckpointError, match="not a FOMM checkpoint"):
        load_checkpoint(tmp_path / "other.pth.tar", config=tiny_config)
    write_published(tmp_path / "m.pth.tar", build_model(tiny_config))
    with pytest.raises(CheckpointError, match="needs --config"):
        load_checkpoint(tmp_path / "m.pth.tar")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="without an animate-cli config"):
        load_checkpoint(tmp_path / "plain.safetensors")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path, tiny_config):
    path = save_checkpoint(perturbed_model(tiny_config), tmp_path / "m.safetensors")
    path.chmod(0)
    with pytest.raises(CheckpointError, match="permission denied"):
        load_checkpoint(path)


def test_discriminator_round_trips_when_asked(tmp_path, tiny_config):
    model = build_model(tiny_config, with_discriminator=True)
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    with_disc = load_checkpoint(path, with_discriminator=True)
    assert with_disc.discriminator is not None
    assert load_checkpoint(path).discriminator is None
    for key, value in model.discriminator.state_dict().items():
        assert torch.equal(value, with_disc.discriminator.state_dict()[key])


def test_convert_a_preset_shaped_model_keeps_its_numbers(tmp_path):
    from animate_cli.checkpoint import convert_checkpoint

    config = load_config("mgif-256")
    model = build_model(config)
    write_published(tmp_path / "mgif.pth.tar", model)
    converted = convert_checkpoint(tmp_path / "mgif.pth.tar", tmp_path / "mgif.safetensors", "mgif-256")
    loaded = load_checkpoint(tmp_path / "mgif.safetensors")
    assert loaded.config.name == "mgif-256" and loaded.align_corners is True
    for key, value in converted.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])


def test_saved_checkpoints_honour_the_umask(tmp_path, tiny_config):
    previous = os.umask(0o022)
    try:
        path = save_checkpoint(perturbed_model(tiny_config), tmp_path / "m.safetensors")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644
