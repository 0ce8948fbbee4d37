"""Every published config builds networks whose state dicts match the published key lists and shapes."""

import json

import pytest
import torch

from animate_cli.checkpoint import build_model
from animate_cli.config import load_config
from tests.conftest import REFERENCE, reference_or_skip

PRESETS = ["vox-256", "vox-adv-256", "taichi-256", "taichi-adv-256", "fashion-256", "mgif-256", "bair-256", "nemo-256"]


def shapes(state):
    return {key: list(tensor.shape) for key, tensor in state.items()}


@pytest.mark.parametrize("name", PRESETS)
def test_keys_and_shapes_match_the_published_checkpoints(name):
    expected = json.loads(reference_or_skip(REFERENCE / f"keys-{name}.json").read_text())
    expected_disc = json.loads((REFERENCE / f"keys-{name}.discriminator.json").read_text())
    with torch.device("meta"):  # shapes only: no memory for ~60M parameters
        model = build_model(load_config(name), with_discriminator=True)
    ours = shapes(model.state_dict())
    ours_main = {k: v for k, v in ours.items() if not k.startswith("discriminator.")}
    ours_disc = {k: v for k, v in ours.items() if k.startswith("discriminator.")}
    assert list(ours_main) == list(expected)  # same keys in the same order
    assert ours_main == expected
    assert ours_disc == expected_disc


def test_parameter_counts_of_vox_256_match_the_published_networks():
    with torch.device("meta"):
        counts = build_model(load_config("vox-256"), with_discriminator=True).parameter_counts()
    assert counts == {
        "kp_detector": 14_215_368,
        "generator": 45_575_391,
        "dense_motion_network": 37_730_268,
        "discriminator": 2_758_849,
    }


def test_zeroth_order_model_has_no_jacobian_head(tiny_config):
    from animate_cli.config import parse_config

    data = tiny_config.to_dict()
    data["model_params"]["common_params"]["estimate_jacobian"] = False
    model = build_model(parse_config(data))
    assert not any("jacobian" in key for key in model.state_dict())
    kp = model.kp_detector.eval()(torch.rand(2, 3, 64, 64))
    assert kp.jacobian is None and kp.value.shape == (2, 5, 2)


def test_fresh_jacobian_head_starts_at_the_identity(tiny_config):
    model = build_model(tiny_config).eval()
    kp = model.kp_detector(torch.rand(1, 3, 64, 64))
    assert torch.allclose(kp.jacobian, torch.eye(2).expand(1, 5, 2, 2), atol=1e-6)
