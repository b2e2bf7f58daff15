"""Tile-based Gaussian compositing on the CPU, forward and backward, compiled with numba.

The same algorithm as 3DGS's and gsplat's CUDA rasterizer, laid out for a CPU:

1. ``bin_gaussians``: each Gaussian's pixel box (where its alpha can still reach 1/255),
   the 16x16 tiles it touches, and per tile the list of its Gaussians, nearest first
   (one global depth sort, then a counting sort by tile that keeps that order);
2. ``composite_tiles``: tiles in parallel; within a tile, Gaussians front to back, each
   visiting only the pixels of its box (the CPU's inner loop runs over pixels, not
   Gaussians); a pixel stops once its transmittance would fall to 1e-4, the tile once all
   its pixels have;
3. ``composite_tiles_backward``: the same walk back to front from each pixel's last
   contributor, rebuilding the transmittance by division as 3DGS does; gradients are
   written per (tile, Gaussian) entry so tiles never share a write, then summed per
   Gaussian.

Conventions are gsplat's (``packed=False``): pixel centres at +0.5, conic (a, b, c) with
sigma = 0.5 (a dx^2 + c dy^2) + b dx dy, alpha = min(0.999, opacity exp(-sigma)), entries
with sigma < 0 or alpha < 1/255 skipped. Kernels are generic over float32 / float64 (the
gradient checks run in float64). Compiled code is cached beside this file (or in
``NUMBA_CACHE_DIR``), so only the first run on a machine pays the compile time.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

TILE = 16
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4           # a pixel is opaque once its transmittance would fall to this
MAX_EXTENT2 = 3.33 ** 2  # squared box half-size in standard deviations, as gsplat's radius
GRAD_COLUMNS = 6       # per-Gaussian gradient columns before the colours: mx, my, a, b, c, opacity


@njit(cache=True, error_model="numpy")
def _box(mx, my, a, b, c, opacity, width, height):
    """Pixel box (x0, y0, x1, y1), inclusive, of the pixels whose centre can get alpha >= 1/255; x1 < x0 if none."""
    det = a * c - b * b
    if det <= 0.0 or opacity <= ALPHA_MIN:
        return 0, 0, -1, -1
    # 0.5 d^T C d <= s bounds |dx| <= sqrt(2 s C^-1_xx), with C^-1_xx = c / det.
    extent2 = min(2.0 * math.log(opacity / ALPHA_MIN), MAX_EXTENT2)
    hx = math.sqrt(extent2 * c / det)
    hy = math.sqrt(extent2 * a / det)
    x0 = max(0, int(math.ceil(mx - hx - 0.5)))
    x1 = min(width - 1, int(math.floor(mx + hx - 0.5)))
    y0 = max(0, int(math.ceil(my - hy - 0.5)))
    y1 = min(height - 1, int(math.floor(my + hy - 0.5)))
    return x0, y0, x1, y1


@njit(cache=True, inline="always", error_model="numpy")
def _tile(t, width, height):
    """Tile t's first pixel column and row, and its width and height (tiles are row-major)."""
    tiles_x = (width + TILE - 1) // TILE
    px0, py0 = (t % tiles_x) * TILE, (t // tiles_x) * TILE
    return px0, py0, min(TILE, width - px0), min(TILE, height - py0)


@njit(cache=True, inline="always", error_model="numpy")
def _clip_box(boxes, g, px0, py0, tw, th):
    """Gaussian g's pixel box within the tile at (px0, py0) of size tw x th (empty when x1 < x0)."""
    return (max(boxes[g, 0], px0), max(boxes[g, 1], py0),
            min(boxes[g, 2], px0 + tw - 1), min(boxes[g, 3], py0 + th - 1))


@njit(cache=True, inline="always", error_model="numpy")
def _reach(opacity):
    """The largest sigma at which opacity exp(-sigma) still reaches 1/255 (at most 3.33^2 / 2, as the box)."""
    return min(math.log(max(opacity, ALPHA_MIN) / ALPHA_MIN), 0.5 * MAX_EXTENT2)


@njit(cache=True, inline="always", error_model="numpy")
def _row_span(mx, half_a, row_b, row_c, reach, x0, x1):
    """The columns of one pixel row, within [x0, x1], where sigma can be under ``reach``: the row's chord
    of the ellipse (sigma is quadratic in dx), one pixel wider each side against rounding. Skipping
    the box's corners is exact: every skipped pixel has alpha < 1/255."""
    disc = row_b * row_b - 4.0 * half_a * (row_c - reach)
    if disc < 0.0:
        return x0, x0 - 1
    root = math.sqrt(disc)
    low = (-row_b - root) / (2.0 * half_a) + mx - 0.5
    high = (-row_b + root) / (2.0 * half_a) + mx - 0.5
    return max(x0, int(math.floor(low))), min(x1, int(math.ceil(high)))


@njit(cache=True, error_model="numpy")
def bin_gaussians(means2d, conics, opacities, depths, visible, width, height):
    """Per-tile Gaussian lists, each nearest first.

    Returns boxes [N, 4] (x0, y0, x1, y1 pixel boxes, empty when x1 < x0), offsets
    [tiles + 1] and ids [entries]: tile t's Gaussians are ids[offsets[t]:offsets[t + 1]].
    Tiles are numbered row-major, ``(width + 15) // 16`` per row.
    """
    n = means2d.shape[0]
    tiles_x = (width + TILE - 1) // TILE
    tiles_y = (height + TILE - 1) // TILE
    boxes = np.empty((n, 4), np.int32)
    counts = np.zeros(tiles_x * tiles_y + 1, np.int64)
    for i in range(n):
        if not visible[i]:
            boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3] = 0, 0, -1, -1
            continue
        x0, y0, x1, y1 = _box(means2d[i, 0], means2d[i, 1], conics[i, 0], conics[i, 1], conics[i, 2],
                              opacities[i], width, height)
        boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3] = x0, y0, x1, y1
        if x1 < x0 or y1 < y0:
            continue
        for ty in range(y0 // TILE, y1 // TILE + 1):
            for tx in range(x0 // TILE, x1 // TILE + 1):
                counts[ty * tiles_x + tx + 1] += 1
    offsets = np.cumsum(counts)
    ids = np.empty(offsets[-1], np.int32)
    fill = offsets[:-1].copy()
    for i in np.argsort(depths, kind="mergesort"):
        x0, y0, x1, y1 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        if x1 < x0 or y1 < y0:
            continue
        for ty in range(y0 // TILE, y1 // TILE + 1):
            for tx in range(x0 // TILE, x1 // TILE + 1):
                t = ty * tiles_x + tx
                ids[fill[t]] = i
                fill[t] += 1
    return boxes, offsets, ids


@njit(cache=True, error_model="numpy")
def _constants(dtype_source, width, height):
    """Pixel-centre coordinates and the thresholds in the images' own float type (float32 math stays float32)."""
    values = np.empty(4, dtype_source.dtype)
    values[0], values[1], values[2], values[3] = 0.5, ALPHA_MAX, ALPHA_MIN, T_MIN
    xs = np.arange(width).astype(dtype_source.dtype) + values[0]
    ys = np.arange(height).astype(dtype_source.dtype) + values[0]
    return values[0], values[1], values[2], values[3], xs, ys


@njit(cache=True, parallel=True, error_model="numpy")
def composite_tiles(means2d, conics, opacities, colors, background, boxes, offsets, ids, width, height):
    """Front-to-back compositing. Returns image [H, W, D], final transmittance [H, W] and, per pixel,
    one past the list position of its last contributing Gaussian (what the backward pass starts from)."""
    channels = colors.shape[1]
    n_tiles = len(offsets) - 1
    dtype = colors.dtype
    half, alpha_max, alpha_min, t_min, xs, ys = _constants(colors, width, height)
    image = np.empty((height, width, channels), dtype)
    transmittance = np.empty((height, width), dtype)
    last = np.empty((height, width), np.int64)
    for t in prange(n_tiles):
        px0, py0, tw, th = _tile(t, width, height)
        T = np.ones((th, tw), dtype)
        acc = np.zeros((th, tw, channels), dtype)
        end = np.full((th, tw), offsets[t], np.int64)
        done = np.zeros((th, tw), np.bool_)
        remaining = th * tw
        for k in range(offsets[t], offsets[t + 1]):
            g = ids[k]
            x0, y0, x1, y1 = _clip_box(boxes, g, px0, py0, tw, th)
            mx, my = means2d[g, 0], means2d[g, 1]
            half_a, b, half_c = half * conics[g, 0], conics[g, 1], half * conics[g, 2]
            opacity = opacities[g]
            reach = _reach(opacity)
            for y in range(y0, y1 + 1):
                dy = ys[y] - my
                row_b, row_c = b * dy, half_c * dy * dy
                ly = y - py0
                span_x0, span_x1 = _row_span(mx, half_a, row_b, row_c, reach, x0, x1)
                for x in range(span_x0, span_x1 + 1):
                    lx = x - px0
                    if done[ly, lx]:
                        continue
                    dx = xs[x] - mx
                    sigma = (half_a * dx + row_b) * dx + row_c
                    if sigma < 0:
                        continue
                    alpha = min(alpha_max, opacity * math.exp(-sigma))
                    if alpha < alpha_min:
                        continue
                    t_here = T[ly, lx]
                    t_next = t_here - t_here * alpha
                    if t_next <= t_min:
                        done[ly, lx] = True
                        remaining -= 1
                        continue
                    weight = alpha * t_here
                    for d in range(channels):
                        acc[ly, lx, d] += weight * colors[g, d]
                    T[ly, lx] = t_next
                    end[ly, lx] = k + 1
            if remaining == 0:
                break
        for ly in range(th):
            for lx in range(tw):
                for d in range(channels):
                    image[py0 + ly, px0 + lx, d] = acc[ly, lx, d] + T[ly, lx] * background[d]
                transmittance[py0 + ly, px0 + lx] = T[ly, lx]
                last[py0 + ly, px0 + lx] = end[ly, lx]
    return image, transmittance, last


@njit(cache=True, parallel=True, error_model="numpy")
def composite_tiles_backward(means2d, conics, opacities, colors, background, boxes, offsets, ids, width, height,
                             transmittance, last, grad_image, grad_alpha):
    """Gradients of a loss through ``composite_tiles`` (image and alpha = 1 - transmittance).

    Returns [N, 6 + D]: d/d(mean x, mean y, conic a, b, c, opacity, colour channels).
    """
    n = means2d.shape[0]
    channels = colors.shape[1]
    columns = GRAD_COLUMNS + channels
    n_tiles = len(offsets) - 1
    dtype = colors.dtype
    half, alpha_max, alpha_min, _, xs, ys = _constants(colors, width, height)
    one = half + half
    entry_grads = np.empty((len(ids), columns), dtype)
    for t in prange(n_tiles):
        px0, py0, tw, th = _tile(t, width, height)
        T = np.empty((th, tw), dtype)
        behind = np.empty((th, tw, channels), dtype)  # colour from everything behind, background included
        alpha_grad = np.empty((th, tw), dtype)        # d loss / d (1 - final transmittance) x final transmittance
        k_end = offsets[t]
        for ly in range(th):
            for lx in range(tw):
                t_final = transmittance[py0 + ly, px0 + lx]
                T[ly, lx] = t_final
                alpha_grad[ly, lx] = grad_alpha[py0 + ly, px0 + lx] * t_final
                for d in range(channels):
                    behind[ly, lx, d] = t_final * background[d]
                k_end = max(k_end, last[py0 + ly, px0 + lx])
        for k in range(k_end, offsets[t + 1]):
            for j in range(columns):
                entry_grads[k, j] = 0.0
        color_grads = np.empty(channels, dtype)
        for k in range(k_end - 1, offsets[t] - 1, -1):
            g = ids[k]
            x0, y0, x1, y1 = _clip_box(boxes, g, px0, py0, tw, th)
            mx, my = means2d[g, 0], means2d[g, 1]
            a, b, c = conics[g, 0], conics[g, 1], conics[g, 2]
            half_a, half_c = half * a, half * c
            opacity = opacities[g]
            g_mx = g_my = g_a = g_b = g_c = g_opacity = half - half
            color_grads[:] = 0.0
            reach = _reach(opacity)
            for y in range(y0, y1 + 1):
                dy = ys[y] - my
                row_b, row_c = b * dy, half_c * dy * dy
                ly = y - py0
                span_x0, span_x1 = _row_span(mx, half_a, row_b, row_c, reach, x0, x1)
                for x in range(span_x0, span_x1 + 1):
                    if k >= last[y, x]:
                        continue
                    lx = x - px0
                    dx = xs[x] - mx
                    sigma = (half_a * dx + row_b) * dx + row_c  # as in composite_tiles, so the same entries pass
                    if sigma < 0:
                        continue
                    vis = math.exp(-sigma)
                    alpha = min(alpha_max, opacity * vis)
                    if alpha < alpha_min:
                        continue
                    one_minus = one - alpha
                    t_before = T[ly, lx] / one_minus
                    weight = alpha * t_before
                    g_alpha = alpha_grad[ly, lx] / one_minus
                    for d in range(channels):
                        gi = grad_image[y, x, d]
                        g_alpha += gi * (t_before * colors[g, d] - behind[ly, lx, d] / one_minus)
                        color_grads[d] += weight * gi
                        behind[ly, lx, d] += weight * colors[g, d]
                    T[ly, lx] = t_before
                    if opacity * vis <= alpha_max:  # the clamp passes no gradient
                        g_opacity += vis * g_alpha
                        g_sigma = -opacity * vis * g_alpha
                        g_a += half * dx * dx * g_sigma
                        g_b += dx * dy * g_sigma
                        g_c += half * dy * dy * g_sigma
                        g_mx -= (a * dx + b * dy) * g_sigma
                        g_my -= (b * dx + c * dy) * g_sigma
            entry_grads[k, 0] = g_mx
            entry_grads[k, 1] = g_my
            entry_grads[k, 2] = g_a
            entry_grads[k, 3] = g_b
            entry_grads[k, 4] = g_c
            entry_grads[k, 5] = g_opacity
            for d in range(channels):
                entry_grads[k, GRAD_COLUMNS + d] = color_grads[d]
    grads = np.zeros((n, columns), dtype)
    for k in range(len(ids)):
        g = ids[k]
        for j in range(columns):
            grads[g, j] += entry_grads[k, j]
    return grads
