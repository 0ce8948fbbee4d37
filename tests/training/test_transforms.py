"""The random warps of the equivariance losses."""

from __future__ import annotations

import torch

from animate_cli.config import TransformParams
from animate_cli.motion import make_coordinate_grid
from animate_cli.training.transforms import RandomTransform, tps_kernel


def test_zero_noise_is_the_identity():
    transform = RandomTransform.sample(3, TransformParams(sigma_affine=0.0, sigma_tps=0.0, points_tps=5))
    points = torch.rand(3, 7, 2) * 2 - 1
    assert torch.equal(transform.warp_coordinates(points), points)
    frame = torch.rand(3, 3, 16, 20)
    assert torch.allclose(transform.transform_frame(frame), frame, atol=1e-5)
    identity = torch.eye(2).expand(3, 7, 2, 2)
    assert torch.allclose(transform.jacobian(points), identity, atol=1e-6)


def test_seeded_sampling_repeats_and_has_the_published_spread():
    params = TransformParams(sigma_affine=0.05, sigma_tps=0.005, points_tps=5)
    first = RandomTransform.sample(4, params, torch.Generator().manual_seed(7))
    again = RandomTransform.sample(4, params, torch.Generator().manual_seed(7))
    assert torch.equal(first.theta, again.theta) and torch.equal(first.control_weights, again.control_weights)
    assert first.control_points.shape == (25, 2) and first.control_weights.shape == (4, 25)
    many = RandomTransform.sample(20000, params, torch.Generator().manual_seed(0))
    assert abs((many.theta - torch.eye(2, 3)).std().item() - 0.05) < 2e-3
    assert abs(many.control_weights.std().item() - 0.005) < 2e-4


def test_tps_kernel_uses_r_squared_log_r():
    r = torch.tensor([0.0, 0.5, 1.0, 2.0])
    assert torch.allclose(tps_kernel(r), r**2 * torch.log(r + 1e-6))
    assert tps_kernel(r)[0] == 0


def test_spline_term_is_one_scalar_added_to_both_coordinates():
    theta = torch.eye(2, 3).unsqueeze(0)
    control = make_coordinate_grid(2, 2).reshape(-1, 2)
    transform = RandomTransform(theta, control, torch.tensor([[0.1, -0.2, 0.3, 0.05]]))
    points = torch.tensor([[[0.3, -0.4]]])
    shift = transform.warp_coordinates(points) - points
    distances = (points.view(1, 2) - control).abs().sum(-1)
    expected = (tps_kernel(distances) * transform.control_weights[0]).sum()
    assert torch.allclose(shift, expected.expand(1, 1, 2), atol=1e-7)


def test_jacobian_by_autograd_matches_finite_differences():
    params = TransformParams(sigma_affine=0.2, sigma_tps=0.1, points_tps=5)
    sampled = RandomTransform.sample(2, params, torch.Generator().manual_seed(3))
    transform = RandomTransform(*(t.double() for t in (sampled.theta, sampled.control_points, sampled.control_weights)))
    points = (torch.rand(2, 6, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 1.8 - 0.9)
    jacobian = transform.jacobian(points)
    step = 1e-6
    for axis in range(2):
        offset = torch.zeros(2, dtype=torch.float64)
        offset[axis] = step
        forward, backward = transform.warp_coordinates(points + offset), transform.warp_coordinates(points - offset)
        column = (forward - backward) / (2 * step)
        assert torch.allclose(jacobian[..., :, axis], column, atol=1e-7)


def test_jacobian_is_differentiable_for_the_loss():
    transform = RandomTransform.sample(1, TransformParams(0.1, 0.05, 3), torch.Generator().manual_seed(1))
    points = torch.zeros(1, 2, 2, requires_grad=True)
    jacobian = transform.jacobian(points * 0.5)
    jacobian.sum().backward()  # the gradient reaches the keypoints through the jacobian (create_graph)
    assert points.grad is not None and torch.isfinite(points.grad).all()
