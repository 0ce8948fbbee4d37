"""Known values and gradients of the seed's math (animate_cli.motion)."""

import math

import pytest
import torch

from animate_cli.motion import (
    blend_warped_source,
    convex_hull_area,
    dense_flow,
    heatmap_covariance,
    heatmap_jacobian,
    heatmap_mean,
    keypoint_heatmaps,
    make_coordinate_grid,
    movement_scale,
    normalize_keypoints,
    sparse_motions,
    warp,
)
from animate_cli.structures import Keypoints


def test_coordinate_grid_corners_and_order():
    grid = make_coordinate_grid(3, 5)
    assert grid.shape == (3, 5, 2)
    assert grid[0, 0].tolist() == [-1, -1]
    assert grid[-1, -1].tolist() == [1, 1]
    assert grid[0, 1].tolist() == [-0.5, -1]  # x varies along the width


def test_gaussian_heatmap_returns_its_mean_and_variance():
    height = width = 41
    grid = make_coordinate_grid(height, width, dtype=torch.float64)
    mean = grid[20, 14]  # on a grid point: the discrete gaussian is symmetric about it
    kp = mean.view(1, 1, 2)
    heatmap = keypoint_heatmaps(kp, height, width, variance=0.005)
    heatmap = heatmap / heatmap.sum(dim=(2, 3), keepdim=True)
    assert torch.allclose(heatmap_mean(heatmap), kp, atol=1e-12)
    covariance = heatmap_covariance(heatmap, kp)[0, 0]
    assert torch.allclose(covariance, 0.005 * torch.eye(2, dtype=torch.float64), rtol=1e-3)


def test_heatmap_jacobian_shared_map_broadcasts():
    heatmap = torch.softmax(torch.randn(2, 3, 36), dim=2).view(2, 3, 6, 6)
    shared = torch.randn(2, 1, 4, 6, 6)
    per_keypoint = shared.expand(2, 3, 4, 6, 6)
    assert torch.allclose(heatmap_jacobian(heatmap, shared), heatmap_jacobian(heatmap, per_keypoint))


def random_keypoints(batch, num_kp, first_order=True, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    value = (torch.rand(batch, num_kp, 2, generator=generator, dtype=dtype) * 1.6 - 0.8)
    jacobian = None
    if first_order:
        jacobian = torch.eye(2, dtype=dtype) + 0.3 * torch.randn(batch, num_kp, 2, 2, generator=generator, dtype=dtype)
    return Keypoints(value, jacobian)


def test_identical_keypoints_give_the_exact_identity_flow_and_warp():
    kp = random_keypoints(2, 4)
    motions = sparse_motions(kp, kp, 16, 16)
    identity = make_coordinate_grid(16, 16)
    assert torch.allclose(motions, identity.expand_as(motions), atol=1e-6)
    mask = torch.softmax(torch.randn(2, 5, 16, 16), dim=1)
    flow = dense_flow(mask, motions)
    assert torch.allclose(flow, identity.expand_as(flow), atol=1e-6)
    image = torch.rand(2, 3, 16, 16)
    assert torch.allclose(warp(image, flow, align_corners=True), image, atol=1e-5)


def test_identity_grid_is_not_the_identity_without_align_corners():
    image = torch.rand(1, 3, 16, 16)
    grid = make_coordinate_grid(16, 16).unsqueeze(0)
    assert (warp(image, grid, align_corners=False) - image).abs().max() > 0.05


def test_first_order_with_identity_jacobians_equals_zeroth_order():
    source = random_keypoints(3, 5, first_order=False, seed=1)
    driving = random_keypoints(3, 5, first_order=False, seed=2)
    eye = torch.eye(2).expand(3, 5, 2, 2)
    first = sparse_motions(Keypoints(source.value, eye), Keypoints(driving.value, eye), 12, 10)
    zeroth = sparse_motions(source, driving, 12, 10)
    assert torch.allclose(first, zeroth, atol=1e-6)


@pytest.mark.parametrize("first_order", [False, True])
def test_translating_driving_keypoints_translates_the_sparse_motion(first_order):
    source = random_keypoints(1, 4, first_order, seed=3)
    driving = random_keypoints(1, 4, first_order, seed=4)
    shift = torch.tensor([0.2, -0.1])
    moved = Keypoints(driving.value + shift, driving.jacobian)
    before = sparse_motions(source, driving, 8, 8)
    after = sparse_motions(source, moved, 8, 8)
    # T_k(z) = A_k (z - kp_drv,k) + kp_src,k, so shifting kp_drv by d shifts T_k by -A_k d (A = I in zeroth order)
    a = torch.eye(2).expand(1, 4, 2, 2)
    if first_order:
        a = source.jacobian @ torch.inverse(driving.jacobian)
    expected = before[:, 1:] - (a @ shift).view(1, 4, 1, 1, 2)
    assert torch.allclose(after[:, 1:], expected, atol=1e-6)
    assert torch.equal(after[:, 0], before[:, 0])  # the background does not move


def test_convex_hull_area_and_movement_scale():
    square = torch.tensor([[-1.0, -1], [1, -1], [1, 1], [-1, 1], [0, 0]])
    assert convex_hull_area(square) == pytest.approx(4.0)
    assert convex_hull_area(torch.tensor([[0.0, 0], [1, 1], [2, 2]])) == 0.0  # collinear
    small = Keypoints((square * 0.5).unsqueeze(0))
    assert movement_scale(small, Keypoints(square.unsqueeze(0))) == pytest.approx(0.5)


def test_normalize_keypoints_relative_and_absolute():
    source = random_keypoints(1, 5, seed=5)
    initial = random_keypoints(1, 5, seed=6)
    driving = random_keypoints(4, 5, seed=7)
    absolute = normalize_keypoints(source, driving, initial, relative=False)
    assert absolute is driving
    relative = normalize_keypoints(source, driving, initial, adapt_movement_scale=True)
    scale = math.sqrt(convex_hull_area(source.value[0])) / math.sqrt(convex_hull_area(initial.value[0]))
    assert torch.allclose(relative.value, (driving.value - initial.value) * scale + source.value, atol=1e-6)
    expected_jacobian = driving.jacobian @ torch.inverse(initial.jacobian) @ source.jacobian
    assert torch.allclose(relative.jacobian, expected_jacobian, atol=1e-5)
    # the reference frame itself maps onto the source
    at_reference = normalize_keypoints(source, initial, initial, adapt_movement_scale=True)
    assert torch.allclose(at_reference.value, source.value, atol=1e-6)
    assert torch.allclose(at_reference.jacobian, source.jacobian, atol=1e-5)


def test_normalize_zeroth_order_relative_does_not_need_jacobians():
    source, initial, driving = (random_keypoints(b, 3, first_order=False, seed=s) for b, s in ((1, 1), (1, 2), (2, 3)))
    out = normalize_keypoints(source, driving, initial)
    assert out.jacobian is None
    assert torch.allclose(out.value, driving.value - initial.value + source.value)


def test_gradcheck_of_the_pure_functions():
    dtype = torch.float64
    heatmap = torch.softmax(torch.randn(1, 2, 25, dtype=dtype), dim=2).view(1, 2, 5, 5).requires_grad_()
    assert torch.autograd.gradcheck(heatmap_mean, (heatmap,))
    mean = torch.rand(1, 2, 2, dtype=dtype, requires_grad=True)
    assert torch.autograd.gradcheck(heatmap_covariance, (heatmap, mean))
    assert torch.autograd.gradcheck(lambda kp: keypoint_heatmaps(kp, 6, 5, 0.05), (mean,))

    source = random_keypoints(1, 2, dtype=dtype, seed=8)
    driving = random_keypoints(1, 2, dtype=dtype, seed=9)
    leaves = [t.clone().requires_grad_() for t in (source.value, source.jacobian, driving.value, driving.jacobian)]

    def motions(sv, sj, dv, dj):
        return sparse_motions(Keypoints(sv, sj), Keypoints(dv, dj), 4, 5)

    assert torch.autograd.gradcheck(motions, leaves)

    initial = random_keypoints(1, 2, dtype=dtype, seed=10)

    def normalized(sv, sj, dv, dj):
        out = normalize_keypoints(Keypoints(sv, sj), Keypoints(dv, dj), initial, adapt_movement_scale=True)
        return out.value, out.jacobian

    assert torch.autograd.gradcheck(normalized, leaves)
    mask = torch.softmax(torch.randn(1, 3, 4, 5, dtype=dtype), dim=1).requires_grad_()
    candidate = torch.randn(1, 3, 4, 5, 2, dtype=dtype, requires_grad=True)
    assert torch.autograd.gradcheck(dense_flow, (mask, candidate))
    image = torch.rand(1, 2, 5, 5, dtype=dtype, requires_grad=True)
    grid = (torch.rand(1, 4, 4, 2, dtype=dtype) * 1.6 - 0.8).requires_grad_()
    assert torch.autograd.gradcheck(lambda i, g: warp(i, g, align_corners=True), (image, grid))


def test_blend_takes_the_warped_source_where_copy_is_one_and_the_decoded_colour_where_it_is_zero():
    warped, decoded = torch.full((1, 3, 2, 2), 0.8), torch.full((1, 3, 2, 2), 0.2)
    copy = torch.tensor([[[[1.0, 0.0], [0.25, 0.5]]]])
    out = blend_warped_source(warped, decoded, copy)
    torch.testing.assert_close(out[0, :, 0, 0], torch.full((3,), 0.8))
    torch.testing.assert_close(out[0, :, 0, 1], torch.full((3,), 0.2))
    torch.testing.assert_close(out[0, :, 1, 0], torch.full((3,), 0.35))
    torch.testing.assert_close(out[0, :, 1, 1], torch.full((3,), 0.5))
