"""Benchmark (not a test): Gaussian filtering throughput, 1,000,000 Gaussians x 50 views.

    .venv/bin/python bench/bench_filter.py [--gaussians 1000000] [--views 50] [--width 1024 --height 576]

Times the vectorised filter (onyx_segformer.filter_gaussians) stage by stage and, in the same run, a
naive baseline that loops in Python over views and Gaussians (the shape of a straightforward port of
Onyx 1.0), measured on a subsample and scaled to the full cloud. Also checks that both
agree on the subsample.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from onyx_segformer.cameras import Camera
from onyx_segformer.config import FilterConfig
from onyx_segformer.filter_gaussians import filter_gaussians_detailed, remove_outliers


def look_at(centre: np.ndarray, target: np.ndarray, K: np.ndarray, width: int, height: int, name: str) -> Camera:
    forward = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross([0.0, 1.0, 0.0], forward)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    return Camera(K=K, R=R, t=-R @ centre, width=width, height=height, name=name)


def scene(n: int, views: int, width: int, height: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=[2.0, 0.7, 2.0], size=(n, 3)).astype(np.float32)
    f = 0.8 * width
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
    angles = np.linspace(0, 2 * np.pi, views, endpoint=False)
    cameras = [look_at(np.array([7 * np.cos(a), -1.0, 7 * np.sin(a)]), np.zeros(3), K, width, height, f"v{i:03d}")
               for i, a in enumerate(angles)]
    masks = []
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(views):  # sky in the top third plus a moving "person" blob
        mask = np.full((height, width), 255, np.uint8)
        mask[: height // 3] = 0
        cx, cy = (0.2 + 0.6 * (i / views)) * width, 0.6 * height
        mask[(xx - cx) ** 2 + (yy - cy) ** 2 < (0.08 * width) ** 2] = 0
        masks.append(mask)
    return means, cameras, masks


def naive_votes(means: np.ndarray, cameras, masks, views: np.ndarray) -> np.ndarray:
    """Per view, per Gaussian, in Python: project one point, look up one pixel."""
    kept = np.zeros(len(means), np.int64)
    for v in views:
        cam, mask = cameras[v], masks[v]
        height, width = mask.shape
        for i, point in enumerate(means):
            x, y, z = cam.R @ point + cam.t
            if z <= 1e-6:
                continue
            u = cam.K[0, 0] * x / z + cam.K[0, 2]
            w = cam.K[1, 1] * y / z + cam.K[1, 2]
            if 0 <= u < width and 0 <= w < height and mask[int(w), int(u)] > 127:
                kept[i] += 1
    return kept


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gaussians", type=int, default=1_000_000)
    parser.add_argument("--views", type=int, default=50)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--baseline-sample", type=int, default=2000)
    args = parser.parse_args(argv)

    means, cameras, masks = scene(args.gaussians, args.views, args.width, args.height)
    print(f"{args.gaussians:,} Gaussians x {args.views} views, masks {args.width}x{args.height}, "
          f"{os.cpu_count()} CPUs visible")

    votes_only = FilterConfig(outlier_knn=0)
    t0, c0 = time.perf_counter(), time.process_time()
    votes = filter_gaussians_detailed(means, cameras, masks, votes_only)
    t_votes, c_votes = time.perf_counter() - t0, time.process_time() - c0
    survivors = means[votes.keep]
    t0, c0 = time.perf_counter(), time.process_time()
    inliers = remove_outliers(survivors)
    t_knn, c_knn = time.perf_counter() - t0, time.process_time() - c0
    kept = int(inliers.sum())
    print(f"vectorised projection + mask votes: {t_votes:6.2f} s wall ({c_votes:.2f} s CPU)"
          f"  {args.gaussians / t_votes:12,.0f} Gaussians/s"
          f"  ({args.gaussians * len(votes.views_used) / t_votes:,.0f} Gaussian-views/s)")
    print(f"kNN outlier removal ({len(survivors):,} pts): {t_knn:6.2f} s wall ({c_knn:.2f} s CPU)")
    total = t_votes + t_knn
    print(f"whole filter: {total:6.2f} s  {args.gaussians / total:12,.0f} Gaussians/s;"
          f" kept {kept:,} of {args.gaussians:,} ({len(votes.views_used)} views used)")

    rng = np.random.default_rng(1)
    sample = rng.choice(args.gaussians, size=min(args.baseline_sample, args.gaussians), replace=False)
    t0, c0 = time.perf_counter(), time.process_time()
    naive = naive_votes(means[sample].astype(np.float64), cameras, masks, votes.views_used)
    t_naive = (time.perf_counter() - t0) * args.gaussians / len(sample)
    c_naive = (time.process_time() - c0) * args.gaussians / len(sample)
    agree = float(np.mean(naive == votes.kept_hits[sample]))
    print(f"naive per-view Python loop (measured on {len(sample):,}, scaled): {t_naive:8.1f} s"
          f"  {args.gaussians / t_naive:12,.0f} Gaussians/s")
    print(f"speed-up of the vectorised votes over the naive loop: {t_naive / t_votes:,.0f}x wall,"
          f" {c_naive / c_votes:,.0f}x CPU time;"
          f" kept-view counts agree on {100 * agree:.2f}% of the sample")
    return {"gaussians": args.gaussians, "views": len(votes.views_used), "votes_s": t_votes, "naive_s": t_naive,
            "total_s": total, "agree": agree}


def run():
    """For ``python -m bench``: the mask votes against the naive per-view loop, same run."""
    from .harness import Row

    figures = main([])
    return [Row(f"Gaussian filter votes, {figures['gaussians']:,} x {figures['views']} views",
                figures["votes_s"], figures["naive_s"], "s", "<= 0.1x",
                f"naive loop timed on a sample and scaled; whole filter incl. kNN {figures['total_s']:.1f} s; "
                f"kept-view counts agree on {100 * figures['agree']:.2f}%")]


if __name__ == "__main__":
    main()
