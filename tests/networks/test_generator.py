"""The generator's skip connections (this project's option): shapes, the copied source, the round trip."""

from __future__ import annotations

import pytest
import torch

from animate_cli.checkpoint import build_model, load_checkpoint, save_checkpoint
from animate_cli.config import parse_config
from animate_cli.motion import make_coordinate_grid
from animate_cli.structures import Keypoints
from tests.conftest import perturbed_model


@pytest.fixture
def skip_config(tiny_config):
    data = tiny_config.to_dict()
    data["model_params"]["generator_params"]["skip_connections"] = True
    return parse_config(data)


def test_published_layout_has_no_skips(tiny_config):
    generator = build_model(tiny_config).generator.eval()
    encoding = generator.encode_source(torch.rand(1, 3, 64, 64))
    assert encoding.skips == ()
    assert generator.final.in_channels == 8


def test_skips_are_kept_per_level_and_widen_the_decoder(skip_config):
    generator = build_model(skip_config).generator.eval()
    encoding = generator.encode_source(torch.rand(1, 3, 64, 64))
    # block expansion 8: level 0 at 64x64 with 8 channels, level 1 at 32x32 with 16; the main path is the deepest
    assert [tuple(s.shape) for s in encoding.skips] == [(1, 8, 64, 64), (1, 16, 32, 32)]
    assert tuple(encoding.features.shape) == (1, 32, 16, 16)
    assert generator.up_blocks[1].conv.in_channels == 32  # 16 decoded + 16 skipped
    assert generator.final.in_channels == 8 + 8 + 3  # decoded, skipped level 0, the source image
    assert generator.final.out_channels == 3 + 1  # colour and the copy mask
    kp = Keypoints(torch.rand(3, 5, 2) * 2 - 1, torch.eye(2).expand(3, 5, 2, 2))
    output = generator.animate(encoding, kp[0:1], kp)
    assert output.prediction.shape == (3, 3, 64, 64)


def test_without_down_blocks_the_last_layer_still_reads_the_warped_source(skip_config):
    data = skip_config.to_dict()
    data["model_params"]["generator_params"]["num_down_blocks"] = 0
    generator = build_model(parse_config(data)).generator.eval()
    assert generator.final.in_channels == 8 + 3 and generator.final.out_channels == 3 + 1
    kp = Keypoints(torch.rand(2, 5, 2) * 2 - 1, torch.eye(2).expand(2, 5, 2, 2))
    with torch.no_grad():
        assert generator(torch.rand(1, 3, 64, 64), kp[0:1], kp).prediction.shape == (2, 3, 64, 64)


@pytest.mark.parametrize("copy_logit", [30.0, -30.0])
def test_the_output_is_the_warped_source_or_the_decoded_colour_as_the_copy_mask_says(skip_config, copy_logit):
    """A last layer that reads only the image skip (occlusion map held open): colour logits = the warped source,
    copy logit constant. Driving = source keypoints makes the dense flow the identity; copy 1 then gives the source
    exactly, copy 0 its sigmoid through the decoder's colour channels."""
    generator = build_model(skip_config).generator.eval()
    with torch.no_grad():
        generator.dense_motion_network.occlusion.weight.zero_()
        generator.dense_motion_network.occlusion.bias.fill_(30.0)
        generator.final.weight.zero_()
        generator.final.bias.zero_()
        for channel in range(3):
            generator.final.weight[channel, 16 + channel, 3, 3] = 1.0
        generator.final.bias[3] = copy_logit
    source = torch.rand(1, 3, 64, 64)
    kp = Keypoints(torch.rand(1, 5, 2) * 1.6 - 0.8, torch.eye(2).expand(1, 5, 2, 2))
    with torch.no_grad():
        output = generator(source, kp, kp)
    identity = make_coordinate_grid(16, 16).unsqueeze(0)
    torch.testing.assert_close(output.motion.deformation, identity, atol=1e-5, rtol=0)
    # the identity stays the identity when resized to full resolution, so the source comes back pixel for pixel
    expected = source if copy_logit > 0 else torch.sigmoid(source)
    torch.testing.assert_close(output.prediction, expected, atol=1e-5, rtol=0)


def test_save_load_round_trip_keeps_the_skip_layout(tmp_path, skip_config):
    model = perturbed_model(skip_config)
    path = tmp_path / "skips.safetensors"
    save_checkpoint(model, path, provenance={"purpose": "tests"})
    loaded = load_checkpoint(path)
    assert loaded.config.model_params.generator_params.skip_connections
    source = torch.rand(1, 3, 64, 64)
    kp_source = model.kp_detector(source)
    kp_driving = model.kp_detector(torch.rand(2, 3, 64, 64))
    with torch.no_grad():
        expected = model.generator(source, kp_source, kp_driving).prediction
        found = loaded.generator(source, kp_source, kp_driving).prediction
    torch.testing.assert_close(found, expected, atol=0, rtol=0)


def test_frame_deformation_is_read_where_the_frame_is_made(tiny_config, skip_config):
    """Published layout: at the warped features' resolution (64 / 2^2). Skip layout: at the image's, where the
    identity stays exactly the identity."""
    identity = make_coordinate_grid(16, 16).unsqueeze(0)
    published = build_model(tiny_config).generator.frame_deformation(identity, (64, 64))
    assert published.shape == (1, 16, 16, 2)
    with_skips = build_model(skip_config).generator.frame_deformation(identity, (64, 64))
    torch.testing.assert_close(with_skips, make_coordinate_grid(64, 64).unsqueeze(0), atol=1e-6, rtol=0)
