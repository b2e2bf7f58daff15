"""The public render call on a splat PLY, as a fly-through renders it: the same picture as training's."""

from __future__ import annotations

import torch

from onyx_gsplat.dataset import load_scene
from onyx_gsplat.gaussians import activated, gaussians_from_cloud, init_gaussians, to_cloud
from onyx_gsplat.render import Camera, render, rasterizer
from onyx_tools.layout import BatchLayout
from onyx_tools.splat_ply import read_splat_ply, write_splat_ply


def test_a_splat_ply_renders_as_the_trained_gaussians_do(chair_batch, tmp_path):
    scene = load_scene(BatchLayout(chair_batch), lambda width, height: 8, eval_every=8)
    params = init_gaussians(scene.points, scene.colors, 3, seed=1)
    with torch.no_grad():
        params["shN"].normal_(0.0, 0.1)  # view-dependent colour, so the SH bands are exercised
    write_splat_ply(tmp_path / "splat.ply", to_cloud(params))
    gaussians = gaussians_from_cloud(read_splat_ply(tmp_path / "splat.ply"))
    view = scene.test[0]
    camera = Camera(view.K, view.viewmat, view.width, view.height)
    with torch.no_grad():
        from_ply, alpha, _ = render(gaussians, camera, background=torch.tensor([0.0, 0.0, 1.0]))
        trained, _, _ = render(activated(params, 3), camera, 3, background=torch.tensor([0.0, 0.0, 1.0]),
                               rasterize=rasterizer("tiles-cpu"))
    assert from_ply.shape == (view.height, view.width, 3) and alpha.shape == (view.height, view.width, 1)
    assert torch.allclose(from_ply, trained, atol=1e-4)
    # Where nothing covers a pixel the background shows; somewhere the chair's colours do.
    uncovered = alpha[..., 0] < 1e-3
    if uncovered.any():
        assert torch.allclose(from_ply[uncovered], torch.tensor([0.0, 0.0, 1.0]), atol=1e-3)
    assert (alpha > 0.5).float().mean() > 0.2
