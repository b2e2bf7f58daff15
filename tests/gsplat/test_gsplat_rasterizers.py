"""Both CPU rasterizers (plain PyTorch, and the compiled tile rasterizer) against answers known without them."""

from __future__ import annotations

import math

import pytest
import torch

from onyx_gsplat.rasterize_tiles import rasterization_tiles
from onyx_gsplat.rasterize_torch import ALPHA_MAX, ALPHA_MIN, rasterization_torch
from onyx_gsplat.tile_kernels import T_MIN

W, H, F = 33, 25, 40.0
K = torch.tensor([[[F, 0.0, W / 2], [0.0, F, H / 2], [0.0, 0.0, 1.0]]])
IDENTITY_VIEW = torch.eye(4)[None]
EPS2D = 0.3  # the low-pass term gsplat adds to every 2D covariance


RASTERIZERS = pytest.mark.parametrize("rasterize", [rasterization_torch, rasterization_tiles], ids=["torch", "tiles"])


def _render(means, scales, opacities, colors, quats=None, rasterize=rasterization_torch, **kwargs):
    n = len(means)
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1) if quats is None else quats
    return rasterize(means, quats, scales, opacities, colors, IDENTITY_VIEW, K, W, H, **kwargs)


def _pixel_centres():
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    return xs, ys


@RASTERIZERS
def test_one_gaussian_matches_the_analytic_2d_gaussian(rasterize):
    depth, scale, opacity = 4.0, 0.2, 0.8
    means = torch.tensor([[0.0, 0.0, depth]])
    image, alpha, info = _render(means, torch.full((1, 3), scale), torch.tensor([opacity]),
                                 torch.tensor([[0.2, 0.5, 1.0]]), rasterize=rasterize)
    # Isotropic 3D Gaussian on the optical axis: a 2D Gaussian of std f s / z around the
    # principal point, plus gsplat's eps2d on the variance.
    variance = (F * scale / depth) ** 2 + EPS2D
    xs, ys = _pixel_centres()
    d2 = (xs - W / 2) ** 2 + (ys - H / 2) ** 2
    expected = opacity * torch.exp(-0.5 * d2 / variance)
    expected = torch.where(expected >= ALPHA_MIN, expected, torch.zeros(()))
    assert torch.allclose(alpha[0, :, :, 0], expected, atol=1e-5)
    assert torch.allclose(image[0], expected[..., None] * torch.tensor([0.2, 0.5, 1.0]), atol=1e-5)
    assert info["means2d"][0, 0].tolist() == pytest.approx([W / 2, H / 2])
    # Odd image sizes: the principal point is a pixel centre, where alpha is the opacity;
    # one pixel off it falls by exp(-1 / (2 variance)); far corners stay empty.
    assert alpha[0, H // 2, W // 2, 0] == pytest.approx(opacity, abs=1e-6)
    assert alpha[0, H // 2, W // 2 + 1, 0] == pytest.approx(opacity * math.exp(-0.5 / variance), abs=1e-6)
    assert alpha[0, 0, 0, 0] == 0.0


@RASTERIZERS
def test_two_gaussians_composite_front_to_back_by_depth_not_by_order(rasterize):
    red, green = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    o_near, o_far = 0.6, 0.9
    # Same screen footprint (scale / depth equal), the far one listed first.
    means = torch.tensor([[0.0, 0.0, 6.0], [0.0, 0.0, 3.0]])
    scales = torch.tensor([[0.6] * 3, [0.3] * 3])
    image, alpha, _ = _render(means, scales, torch.tensor([o_far, o_near]), torch.stack([green, red]),
                              rasterize=rasterize)
    xs, ys = _pixel_centres()
    g = torch.exp(-0.5 * ((xs - W / 2) ** 2 + (ys - H / 2) ** 2) / ((F * 0.1) ** 2 + EPS2D))
    a_near, a_far = o_near * g, o_far * g
    a_near = torch.where(a_near >= ALPHA_MIN, a_near, torch.zeros(()))
    a_far = torch.where(a_far >= ALPHA_MIN, a_far, torch.zeros(()))
    expected = a_near[..., None] * red + ((1 - a_near) * a_far)[..., None] * green
    assert torch.allclose(image[0], expected, atol=1e-5)
    assert torch.allclose(alpha[0, :, :, 0], a_near + (1 - a_near) * a_far, atol=1e-5)
    centre = image[0, H // 2, W // 2]
    assert centre[0] > centre[1] > 0  # red in front, green seen through it


def _brute_force(means2d, conics, opacities, colors, depths, radii, stop_at=None):
    """Per pixel: every Gaussian, nearest first, alpha exactly as gsplat defines it.

    ``stop_at``: the pixel takes nothing more once its transmittance would fall to this
    (gsplat's CUDA kernel and the tile rasterizer stop there; the torch one does not).
    """
    image = torch.zeros(H, W, colors.shape[-1], dtype=torch.float64)
    order = torch.argsort(depths).tolist()
    for y in range(H):
        for x in range(W):
            transmittance = 1.0
            for i in order:
                if (radii[i] <= 0).any():
                    continue
                dx, dy = x + 0.5 - means2d[i, 0], y + 0.5 - means2d[i, 1]
                a, b, c = conics[i]
                sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
                alpha = min(ALPHA_MAX, float(opacities[i] * math.exp(-sigma)))
                if sigma < 0 or alpha < ALPHA_MIN:
                    continue
                if stop_at is not None and transmittance * (1 - alpha) <= stop_at:
                    break
                image[y, x] += transmittance * alpha * colors[i].double()
                transmittance *= 1 - alpha
    return image


@pytest.mark.parametrize("rasterize, stop_at, opaque", [
    (rasterization_torch, None, False), (rasterization_tiles, T_MIN, False), (rasterization_tiles, T_MIN, True),
], ids=["torch", "tiles", "tiles-opaque"])
def test_random_scene_matches_a_per_pixel_brute_force(rasterize, stop_at, opaque):
    """33x25 px is 3 x 2 tiles of 16: Gaussians cross tile borders. "opaque": 50 nearly opaque
    Gaussians, so many pixels stop early (transmittance 1e-4)."""
    torch.manual_seed(0)
    n = 50 if opaque else 25
    means = torch.randn(n, 3) * torch.tensor([0.8, 0.6, 0.5]) + torch.tensor([0.0, 0.0, 4.0])
    quats = torch.randn(n, 4)
    scales = torch.rand(n, 3) * 0.3 + (0.15 if opaque else 0.02)
    opacities = torch.rand(n) * 0.04 + 0.95 if opaque else torch.rand(n) * 0.9 + 0.05
    colors = torch.rand(n, 3)
    image, alpha, info = _render(means, scales, opacities, colors, quats=quats, rasterize=rasterize)
    expected = _brute_force(info["means2d"][0], info["conics"][0], opacities, colors, info["depths"][0],
                            info["radii"][0], stop_at=stop_at)
    assert torch.allclose(image[0].double(), expected, atol=1e-4)
    if opaque:
        assert (alpha > 0.99).float().mean() > 0.25  # many pixels nearly opaque: where the early stop acts


@RASTERIZERS
def test_gradients_flow_to_every_parameter(rasterize):
    torch.manual_seed(1)
    n = 40
    means = (torch.randn(n, 3) * 0.5 + torch.tensor([0.0, 0.0, 4.0])).requires_grad_()
    quats = torch.randn(n, 4).requires_grad_()
    log_scales = torch.log(torch.rand(n, 3) * 0.2 + 0.05).requires_grad_()
    logits = torch.zeros(n).requires_grad_()
    sh = (torch.randn(n, 4, 3) * 0.3).requires_grad_()
    image, _, info = rasterize(means, quats, log_scales.exp(), torch.sigmoid(logits), sh,
                               IDENTITY_VIEW, K, W, H, sh_degree=1)
    info["means2d"].retain_grad()  # what DefaultStrategy reads for densification
    target = torch.rand_like(image)
    torch.abs(image - target).mean().backward()
    for name, tensor in [("means", means), ("quats", quats), ("scales", log_scales), ("opacities", logits),
                         ("sh", sh), ("means2d", info["means2d"])]:
        assert tensor.grad is not None, name
        assert torch.isfinite(tensor.grad).all(), name
        assert tensor.grad.abs().sum() > 0, name


@RASTERIZERS
def test_gradient_matches_finite_differences(rasterize):
    """Double precision, a few Gaussians: the backward pass (autograd through sort/cumsum/scatter, or the
    tile kernels' hand-written one) equals numerical derivatives."""
    torch.manual_seed(2)
    means = torch.tensor([[0.1, -0.05, 3.0], [-0.1, 0.1, 3.5], [0.0, 0.0, 4.0]], dtype=torch.float64)
    quats = torch.randn(3, 4, dtype=torch.float64)
    scales = torch.tensor([[0.15, 0.1, 0.2], [0.2, 0.25, 0.1], [0.3, 0.3, 0.3]], dtype=torch.float64)
    opacities = torch.tensor([0.5, 0.7, 0.9], dtype=torch.float64, requires_grad=True)
    colors = torch.rand(3, 3, dtype=torch.float64, requires_grad=True)
    means.requires_grad_()

    def f(m, o, c):
        image, _, _ = rasterize(m, quats, scales, o, c, IDENTITY_VIEW.double(), K.double(), W, H)
        return image.sum()

    assert torch.autograd.gradcheck(f, (means, opacities, colors), eps=1e-6, atol=1e-4)


@RASTERIZERS
def test_nothing_in_view_renders_background(rasterize):
    means = torch.tensor([[0.0, 0.0, -4.0]])  # behind the camera
    image, alpha, info = _render(means, torch.full((1, 3), 0.2), torch.tensor([0.9]), torch.ones(1, 3),
                                 backgrounds=torch.tensor([[0.1, 0.2, 0.3]]), rasterize=rasterize)
    assert (info["radii"] == 0).all()
    assert torch.allclose(image[0], torch.tensor([0.1, 0.2, 0.3]).expand(H, W, 3))
    assert alpha.abs().sum() == 0


def _scene_around_the_view(n: int, dtype=torch.float64):
    """Gaussians in front of a turned, shifted camera, a few beyond the field of view's sides
    (where gsplat clamps the projection's Jacobian), with SH degree 3 colours."""
    generator = torch.Generator().manual_seed(3)
    means = torch.randn(n, 3, generator=generator, dtype=dtype) * torch.tensor([1.2, 0.9, 0.5], dtype=dtype)
    means[:, 2] += 3.5
    means[: n // 5, 0] = torch.linspace(-6.0, 6.0, n // 5, dtype=dtype)  # far out to the sides
    quats = torch.randn(n, 4, generator=generator, dtype=dtype)
    scales = torch.rand(n, 3, generator=generator, dtype=dtype) * 0.25 + 0.03
    opacities = torch.rand(n, generator=generator, dtype=dtype) * 0.8 + 0.1
    sh = torch.randn(n, 16, 3, generator=generator, dtype=dtype) * 0.3
    angle = 0.2
    view = torch.eye(4, dtype=dtype)
    view[:3, :3] = torch.tensor([[math.cos(angle), 0.0, math.sin(angle)], [0.0, 1.0, 0.0],
                                 [-math.sin(angle), 0.0, math.cos(angle)]], dtype=dtype)
    view[:3, 3] = torch.tensor([0.1, -0.2, 0.3], dtype=dtype)
    return means, quats, scales, opacities, sh, view[None]


def test_tile_rasterizer_gradients_equal_gsplats_pytorch_reference():
    """Projection, SH and compositing by hand (tiles) against autograd through gsplat's own PyTorch
    projection and SH code (torch rasterizer), every parameter, float64."""
    means, quats, scales, opacities, sh, view = _scene_around_the_view(60)
    target = torch.rand(H, W, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    results = []
    for rasterize in (rasterization_tiles, rasterization_torch):
        inputs = [t.clone().requires_grad_() for t in (means, quats, scales, opacities, sh)]
        image, alpha, info = rasterize(*inputs, view, K.double(), W, H, sh_degree=3)
        info["means2d"].retain_grad()
        (torch.abs(image[0] - target).mean() + alpha.mean()).backward()
        results.append((image, [t.grad for t in inputs] + [info["means2d"].grad]))
    (tiles_image, tiles_grads), (torch_image, torch_grads) = results
    assert torch.allclose(tiles_image, torch_image, atol=1e-10)
    for name, ours, reference in zip(["means", "quats", "scales", "opacities", "sh", "means2d"], tiles_grads,
                                     torch_grads):
        assert reference.abs().max() > 0, name
        assert torch.allclose(ours, reference, rtol=1e-7, atol=1e-12), name


def test_tile_rasterizer_gradient_of_every_parameter_matches_finite_differences():
    means, quats, scales, opacities, sh, view = _scene_around_the_view(5)

    def f(m, q, s, o, c):
        image, alpha, _ = rasterization_tiles(m, q, s, o, c, view, K.double(), W, H, sh_degree=3)
        return image.sum() + alpha.sum()

    inputs = tuple(t.clone().requires_grad_() for t in (means, quats, scales, opacities, sh))
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5)
