import pytest

from animate_cli.config import config_from_yaml, config_to_yaml, load_config, parse_config, preset_names
from animate_cli.errors import ConfigError
from tests.conftest import REFERENCE, reference_or_skip

PRESETS = ["vox-256", "vox-adv-256", "taichi-256", "taichi-adv-256", "fashion-256", "mgif-256", "bair-256", "nemo-256"]


def test_all_eight_published_configs_are_presets():
    assert sorted(PRESETS) == preset_names()


@pytest.mark.parametrize("name", PRESETS)
def test_published_yaml_loads_as_it_is(name):
    import yaml

    path = reference_or_skip(REFERENCE / "configs" / f"{name}.yaml")
    from_file = parse_config(yaml.safe_load(path.read_text()), name=name)
    assert from_file == load_config(name)
    assert from_file.first_order
    assert from_file.model_params.kp_detector_params.single_jacobian_map == (name == "mgif-256")


def test_values_from_facts():
    config = load_config("taichi-adv-256")
    assert config.train_params.lr_kp_detector == 0
    assert config.model_params.discriminator_params.use_kp is True
    assert config.train_params.loss_weights.generator_gan == 1
    assert config.image_size == 256


def test_yaml_round_trip_is_identical():
    config = load_config("mgif-256")
    assert config_from_yaml(config_to_yaml(config), name="mgif-256") == config


def test_unknown_key_is_named_with_its_path():
    with pytest.raises(ConfigError, match=r"unknown config key 'model_params\.generator_params\.num_bottleneck'"):
        parse_config({"model_params": {"generator_params": {"num_bottleneck": 3}}})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"model_params": {"common_params": {"num_kp": "ten"}}}, r"'model_params\.common_params\.num_kp' must be an integer"),
        ({"model_params": {"common_params": {"estimate_jacobian": 1}}}, r"must be true or false"),
        ({"train_params": {"scales": 1}}, r"'train_params\.scales' must be a list"),
        ({"train_params": {"lr_generator": True}}, r"must be a number"),
        ({"model_params": []}, r"'model_params' must be a mapping"),
    ],
)
def test_wrong_types_are_rejected(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_unknown_preset_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="neither a file nor a preset"):
        load_config("vox-512")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_params: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
