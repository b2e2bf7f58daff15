"""Projection of 3D Gaussians and their view-dependent colour on the CPU, forward and backward (numba).

One pass per Gaussian (in parallel), as gsplat's fused CUDA projection: normalised
quaternion and scales -> 3D covariance -> camera frame -> EWA projection (the Jacobian
clamped 30 % beyond the field of view, as gsplat) -> 2D covariance + eps2d -> conic,
depth, pixel radius; then spherical harmonics of the viewing direction -> RGB + 0.5,
clamped at 0. The backward pass is the same chain by hand; gsplat's PyTorch reference
(``gsplat.cuda._torch_impl``) is the specification, and the tests hold the two together.

Per Gaussian, the hand-written chain replaces about thirty tensor operations whose
intermediate [N, 3, 3] tensors cost more than the arithmetic, forward and backward.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# Real SH basis constants (Sloan, "Efficient Spherical Harmonic Evaluation", as gsplat).
SH_C0 = 0.2820947917738781
SH_C1 = 0.48860251190292
SH_B = 1.092548430592079
SH_CA = 0.5462742152960395
SH_P = 0.9461746957575601
SH_P0 = 0.3153915652525201
SH_C31 = 2.285228997322329
SH_C30 = 0.4570457994644658
SH_E = 1.445305721320277
SH_G = 0.5900435899266435
SH_H1 = 1.865881662950577
SH_H0 = 1.119528997770346
RADIUS_SIGMAS = 3.33
CHUNK = 256  # Gaussians per parallel work item (scratch arrays are allocated once per item)


@njit(cache=True, inline="always", error_model="numpy")
def _sh_bases(x, y, z, bases, n_bases):
    """The first ``n_bases`` (1, 4, 9 or 16) real SH bases at the unit direction (x, y, z)."""
    bases[0] = SH_C0
    if n_bases <= 1:
        return
    bases[1] = -SH_C1 * y
    bases[2] = SH_C1 * z
    bases[3] = -SH_C1 * x
    if n_bases <= 4:
        return
    bases[4] = SH_CA * 2.0 * x * y
    bases[5] = -SH_B * z * y
    bases[6] = SH_P * z * z - SH_P0
    bases[7] = -SH_B * z * x
    bases[8] = SH_CA * (x * x - y * y)
    if n_bases <= 9:
        return
    tmp_c = -SH_C31 * z * z + SH_C30
    bases[9] = -SH_G * (3.0 * x * x * y - y * y * y)
    bases[10] = SH_E * z * 2.0 * x * y
    bases[11] = tmp_c * y
    bases[12] = z * (SH_H1 * z * z - SH_H0)
    bases[13] = tmp_c * x
    bases[14] = SH_E * z * (x * x - y * y)
    bases[15] = -SH_G * (x * x * x - 3.0 * x * y * y)


@njit(cache=True, inline="always", error_model="numpy")
def _sh_bases_grad(x, y, z, weights, n_bases):
    """d/d(x, y, z) of sum_k weights[k] * basis_k at (x, y, z)."""
    gx = gy = gz = 0.0
    if n_bases <= 1:
        return gx, gy, gz
    gy -= SH_C1 * weights[1]
    gz += SH_C1 * weights[2]
    gx -= SH_C1 * weights[3]
    if n_bases <= 4:
        return gx, gy, gz
    w = weights[4]
    gx += 2.0 * SH_CA * y * w
    gy += 2.0 * SH_CA * x * w
    w = weights[5]
    gy -= SH_B * z * w
    gz -= SH_B * y * w
    gz += 2.0 * SH_P * z * weights[6]
    w = weights[7]
    gx -= SH_B * z * w
    gz -= SH_B * x * w
    w = weights[8]
    gx += 2.0 * SH_CA * x * w
    gy -= 2.0 * SH_CA * y * w
    if n_bases <= 9:
        return gx, gy, gz
    tmp_c = -SH_C31 * z * z + SH_C30
    w = weights[9]
    gx -= SH_G * 6.0 * x * y * w
    gy -= SH_G * 3.0 * (x * x - y * y) * w
    w = weights[10]
    gx += 2.0 * SH_E * z * y * w
    gy += 2.0 * SH_E * z * x * w
    gz += 2.0 * SH_E * x * y * w
    w = weights[11]
    gy += tmp_c * w
    gz -= 2.0 * SH_C31 * z * y * w
    gz += (3.0 * SH_H1 * z * z - SH_H0) * weights[12]
    w = weights[13]
    gx += tmp_c * w
    gz -= 2.0 * SH_C31 * z * x * w
    w = weights[14]
    gx += 2.0 * SH_E * z * x * w
    gy -= 2.0 * SH_E * z * y * w
    gz += SH_E * (x * x - y * y) * w
    w = weights[15]
    gx -= 3.0 * SH_G * (x * x - y * y) * w
    gy += 6.0 * SH_G * x * y * w
    return gx, gy, gz


@njit(cache=True, inline="always", error_model="numpy")
def _rotation(w, x, y, z, R):
    """Rotation matrix of the unit quaternion (w, x, y, z)."""
    R[0, 0] = 1.0 - 2.0 * (y * y + z * z)
    R[0, 1] = 2.0 * (x * y - w * z)
    R[0, 2] = 2.0 * (x * z + w * y)
    R[1, 0] = 2.0 * (x * y + w * z)
    R[1, 1] = 1.0 - 2.0 * (x * x + z * z)
    R[1, 2] = 2.0 * (y * z - w * x)
    R[2, 0] = 2.0 * (x * z - w * y)
    R[2, 1] = 2.0 * (y * z + w * x)
    R[2, 2] = 1.0 - 2.0 * (x * x + y * y)


@njit(cache=True, inline="always", error_model="numpy")
def _camera_covariance(quat, scale, W, M, cov_c, WM):
    """M = R(q) diag(s) and the camera-frame covariance W M M^T W^T; returns the unit quaternion."""
    norm = math.sqrt(quat[0] ** 2 + quat[1] ** 2 + quat[2] ** 2 + quat[3] ** 2)
    w, x, y, z = quat[0] / norm, quat[1] / norm, quat[2] / norm, quat[3] / norm
    _rotation(w, x, y, z, M)
    for r in range(3):
        for c in range(3):
            M[r, c] *= scale[c]
    # W M, then (W M)(W M)^T
    for r in range(3):
        a0 = W[r, 0] * M[0, 0] + W[r, 1] * M[1, 0] + W[r, 2] * M[2, 0]
        a1 = W[r, 0] * M[0, 1] + W[r, 1] * M[1, 1] + W[r, 2] * M[2, 1]
        a2 = W[r, 0] * M[0, 2] + W[r, 1] * M[1, 2] + W[r, 2] * M[2, 2]
        WM[r, 0], WM[r, 1], WM[r, 2] = a0, a1, a2
    for r in range(3):
        for c in range(3):
            cov_c[r, c] = WM[r, 0] * WM[c, 0] + WM[r, 1] * WM[c, 1] + WM[r, 2] * WM[c, 2]
    return norm, w, x, y, z


@njit(cache=True, inline="always", error_model="numpy")
def _clamped(t, tz, lim_neg, lim_pos):
    """gsplat's t = tz * clamp(t / tz, -lim_neg, lim_pos); also the active limit (0 if none)."""
    u = t / tz
    if u < -lim_neg:
        return -lim_neg * tz, -lim_neg
    if u > lim_pos:
        return lim_pos * tz, lim_pos
    return t, 0.0


@njit(cache=True, error_model="numpy")
def _camera(viewmat, K, width, height):
    """Rotation, translation, centre, intrinsics and gsplat's Jacobian limits (30 % past the field of view)."""
    W = np.ascontiguousarray(viewmat[:3, :3])
    t = np.ascontiguousarray(viewmat[:3, 3])
    centre = -(W.T @ t)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    limits = (cx / fx + 0.15 * width / fx, (width - cx) / fx + 0.15 * width / fx,
              cy / fy + 0.15 * height / fy, (height - cy) / fy + 0.15 * height / fy)
    return W, t, centre, (fx, fy, cx, cy), limits


@njit(cache=True, inline="always", error_model="numpy")
def _to_camera(p, W, t):
    return (W[0, 0] * p[0] + W[0, 1] * p[1] + W[0, 2] * p[2] + t[0],
            W[1, 0] * p[0] + W[1, 1] * p[1] + W[1, 2] * p[2] + t[1],
            W[2, 0] * p[0] + W[2, 1] * p[1] + W[2, 2] * p[2] + t[2])


@njit(cache=True, inline="always", error_model="numpy")
def _jacobian(tx, ty, tz, intrinsics, limits):
    """The EWA Jacobian's non-zero entries j00, j02, j11, j12 and the clamped tx, ty with their active limits."""
    fx, fy = intrinsics[0], intrinsics[1]
    txc, lim_x = _clamped(tx, tz, limits[0], limits[1])
    tyc, lim_y = _clamped(ty, tz, limits[2], limits[3])
    return fx / tz, -fx * txc / (tz * tz), fy / tz, -fy * tyc / (tz * tz), txc, tyc, lim_x, lim_y


@njit(cache=True, inline="always", error_model="numpy")
def _covariance_2d(j00, j02, j11, j12, cov_c, eps2d):
    """J cov_c J^T + eps2d I as (c00, c01, c11), J = [[j00, 0, j02], [0, j11, j12]]."""
    c00 = j00 * j00 * cov_c[0, 0] + 2.0 * j00 * j02 * cov_c[0, 2] + j02 * j02 * cov_c[2, 2] + eps2d
    c01 = (j00 * j11 * cov_c[0, 1] + j00 * j12 * cov_c[0, 2] + j02 * j11 * cov_c[2, 1]
           + j02 * j12 * cov_c[2, 2])
    c11 = j11 * j11 * cov_c[1, 1] + 2.0 * j11 * j12 * cov_c[1, 2] + j12 * j12 * cov_c[2, 2] + eps2d
    return c00, c01, c11


@njit(cache=True, parallel=True, error_model="numpy")
def project_gaussians(means, quats, scales, sh, sh_degree, viewmat, K, width, height, eps2d, near, far):
    """Screen-space Gaussians of one camera.

    Returns means2d [N, 2], conics [N, 3], depths [N], radii [N, 2] (int32, 0 = not drawn)
    and colours [N, 3] (SH up to ``sh_degree`` + 0.5, clamped at 0; zeros when ``sh``
    has no coefficients, i.e. colours are given directly).
    """
    n = means.shape[0]
    dtype = means.dtype
    n_bases = (sh_degree + 1) ** 2
    W, t, centre, intrinsics, limits = _camera(viewmat, K, width, height)
    fx, fy, cx, cy = intrinsics
    means2d = np.empty((n, 2), dtype)
    conics = np.empty((n, 3), dtype)
    depths = np.empty(n, dtype)
    radii = np.zeros((n, 2), np.int32)
    colors = np.zeros((n, 3), dtype)
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        M, cov_c, WM = np.empty((3, 3), dtype), np.empty((3, 3), dtype), np.empty((3, 3), dtype)
        bases = np.empty(16, dtype)
        for i in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
            _camera_covariance(quats[i], scales[i], W, M, cov_c, WM)
            tx, ty, tz = _to_camera(means[i], W, t)
            depths[i] = tz
            means2d[i, 0] = fx * tx / tz + cx
            means2d[i, 1] = fy * ty / tz + cy
            j00, j02, j11, j12, _, _, _, _ = _jacobian(tx, ty, tz, intrinsics, limits)
            c00, c01, c11 = _covariance_2d(j00, j02, j11, j12, cov_c, eps2d)
            det = max(c00 * c11 - c01 * c01, 1e-10)
            conics[i, 0] = c11 / det
            conics[i, 1] = -c01 / det
            conics[i, 2] = c00 / det
            rx = math.ceil(RADIUS_SIGMAS * math.sqrt(c00))
            ry = math.ceil(RADIUS_SIGMAS * math.sqrt(c11))
            inside = (means2d[i, 0] + rx > 0 and means2d[i, 0] - rx < width
                      and means2d[i, 1] + ry > 0 and means2d[i, 1] - ry < height)
            if near < tz < far and inside:
                radii[i, 0] = int(rx)
                radii[i, 1] = int(ry)
            if sh.shape[1] > 0:
                dx, dy, dz = means[i, 0] - centre[0], means[i, 1] - centre[1], means[i, 2] - centre[2]
                norm = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
                _sh_bases(dx / norm, dy / norm, dz / norm, bases, n_bases)
                for ch in range(3):
                    value = 0.5
                    for k in range(n_bases):
                        value += bases[k] * sh[i, k, ch]
                    colors[i, ch] = max(value, 0.0)
    return means2d, conics, depths, radii, colors


@njit(cache=True, parallel=True, error_model="numpy")
def project_gaussians_backward(means, quats, scales, sh, sh_degree, viewmat, K, width, height, eps2d,
                               v_means2d, v_conics, v_colors):
    """Gradients through ``project_gaussians``: d/d means [N, 3], quats [N, 4], scales [N, 3], sh [N, K, 3]."""
    n = means.shape[0]
    dtype = means.dtype
    n_bases = (sh_degree + 1) ** 2
    W, t, centre, intrinsics, limits = _camera(viewmat, K, width, height)
    fx, fy = intrinsics[0], intrinsics[1]
    g_means = np.zeros((n, 3), dtype)
    g_quats = np.zeros((n, 4), dtype)
    g_scales = np.zeros((n, 3), dtype)
    g_sh = np.zeros(sh.shape, dtype)
    for chunk in prange((n + CHUNK - 1) // CHUNK):
        M, cov_c, WM = np.empty((3, 3), dtype), np.empty((3, 3), dtype), np.empty((3, 3), dtype)
        R, v_R = np.empty((3, 3), dtype), np.empty((3, 3), dtype)
        v_cov_c, v_cov = np.empty((3, 3), dtype), np.empty((3, 3), dtype)
        bases, weights = np.empty(16, dtype), np.empty(16, dtype)
        for i in range(chunk * CHUNK, min(n, (chunk + 1) * CHUNK)):
            norm_q, qw, qx, qy, qz = _camera_covariance(quats[i], scales[i], W, M, cov_c, WM)
            tx, ty, tz = _to_camera(means[i], W, t)
            j00, j02, j11, j12, txc, tyc, lim_x, lim_y = _jacobian(tx, ty, tz, intrinsics, limits)
            c00, c01, c11 = _covariance_2d(j00, j02, j11, j12, cov_c, eps2d)
            det = max(c00 * c11 - c01 * c01, 1e-10)
            ia, ib, ic = c11 / det, -c01 / det, c00 / det  # the conic (inverse 2D covariance)

            # conic = cov2d^-1: d cov2d = -C G C, G the symmetric gradient of the conic matrix C.
            ga, gb, gc = v_conics[i, 0], 0.5 * v_conics[i, 1], v_conics[i, 2]
            t00, t01 = ia * ga + ib * gb, ia * gb + ib * gc
            t10, t11 = ib * ga + ic * gb, ib * gb + ic * gc
            v00 = -(t00 * ia + t01 * ib)
            v01 = -(t00 * ib + t01 * ic)
            v11 = -(t10 * ib + t11 * ic)
            # cov2d = J cov_c J^T: d cov_c = J^T V J; d J = 2 V J cov_c (V, cov_c symmetric).
            vj00, vj01, vj02 = v00 * j00, v01 * j11, v00 * j02 + v01 * j12  # (V J) row 0
            vj10, vj11, vj12 = v01 * j00, v11 * j11, v01 * j02 + v11 * j12  # (V J) row 1
            # J^T (V J): J^T rows are (j00, 0), (0, j11), (j02, j12)
            v_cov_c[0, 0], v_cov_c[0, 1], v_cov_c[0, 2] = j00 * vj00, j00 * vj01, j00 * vj02
            v_cov_c[1, 0], v_cov_c[1, 1], v_cov_c[1, 2] = j11 * vj10, j11 * vj11, j11 * vj12
            v_cov_c[2, 0] = j02 * vj00 + j12 * vj10
            v_cov_c[2, 1] = j02 * vj01 + j12 * vj11
            v_cov_c[2, 2] = j02 * vj02 + j12 * vj12
            v_j00 = 2.0 * (vj00 * cov_c[0, 0] + vj01 * cov_c[1, 0] + vj02 * cov_c[2, 0])
            v_j02 = 2.0 * (vj00 * cov_c[0, 2] + vj01 * cov_c[1, 2] + vj02 * cov_c[2, 2])
            v_j11 = 2.0 * (vj10 * cov_c[0, 1] + vj11 * cov_c[1, 1] + vj12 * cov_c[2, 1])
            v_j12 = 2.0 * (vj10 * cov_c[0, 2] + vj11 * cov_c[1, 2] + vj12 * cov_c[2, 2])
            # means2d and J -> the camera-frame mean (through the clamp where it is active)
            tz2 = tz * tz
            v_mx, v_my = v_means2d[i, 0], v_means2d[i, 1]
            v_tx = v_mx * fx / tz
            v_ty = v_my * fy / tz
            v_tz = -(v_mx * fx * tx + v_my * fy * ty) / tz2
            v_tz += -v_j00 * fx / tz2 + v_j02 * 2.0 * fx * txc / (tz2 * tz)
            v_tz += -v_j11 * fy / tz2 + v_j12 * 2.0 * fy * tyc / (tz2 * tz)
            v_txc = -v_j02 * fx / tz2
            v_tyc = -v_j12 * fy / tz2
            if lim_x != 0.0:
                v_tz += v_txc * lim_x
            else:
                v_tx += v_txc
            if lim_y != 0.0:
                v_tz += v_tyc * lim_y
            else:
                v_ty += v_tyc
            # camera frame -> world: p_c = W p + t, cov_c = W cov W^T
            for r in range(3):
                g_means[i, r] = W[0, r] * v_tx + W[1, r] * v_ty + W[2, r] * v_tz
            for r in range(3):
                for c in range(3):
                    value = 0.0
                    for a in range(3):
                        for b in range(3):
                            value += W[a, r] * v_cov_c[a, b] * W[b, c]
                    v_cov[r, c] = value
            # cov = M M^T -> d M = (v_cov + v_cov^T) M, M = R diag(s)
            _rotation(qw, qx, qy, qz, R)
            for r in range(3):
                for c in range(3):
                    v_m = ((v_cov[r, 0] + v_cov[0, r]) * M[0, c] + (v_cov[r, 1] + v_cov[1, r]) * M[1, c]
                           + (v_cov[r, 2] + v_cov[2, r]) * M[2, c])
                    g_scales[i, c] += v_m * R[r, c]
                    v_R[r, c] = v_m * scales[i, c]
            # R(q) of the unit quaternion, then through the normalisation
            v_w = 2.0 * (-qz * v_R[0, 1] + qy * v_R[0, 2] + qz * v_R[1, 0] - qx * v_R[1, 2] - qy * v_R[2, 0]
                         + qx * v_R[2, 1])
            v_x = 2.0 * (qy * v_R[0, 1] + qz * v_R[0, 2] + qy * v_R[1, 0] - 2.0 * qx * v_R[1, 1]
                         - qw * v_R[1, 2] + qz * v_R[2, 0] + qw * v_R[2, 1] - 2.0 * qx * v_R[2, 2])
            v_y = 2.0 * (-2.0 * qy * v_R[0, 0] + qx * v_R[0, 1] + qw * v_R[0, 2] + qx * v_R[1, 0]
                         + qz * v_R[1, 2] - qw * v_R[2, 0] + qz * v_R[2, 1] - 2.0 * qy * v_R[2, 2])
            v_z = 2.0 * (-2.0 * qz * v_R[0, 0] - qw * v_R[0, 1] + qx * v_R[0, 2] + qw * v_R[1, 0]
                         - 2.0 * qz * v_R[1, 1] + qy * v_R[1, 2] + qx * v_R[2, 0] + qy * v_R[2, 1])
            dot = qw * v_w + qx * v_x + qy * v_y + qz * v_z
            g_quats[i, 0] = (v_w - qw * dot) / norm_q
            g_quats[i, 1] = (v_x - qx * dot) / norm_q
            g_quats[i, 2] = (v_y - qy * dot) / norm_q
            g_quats[i, 3] = (v_z - qz * dot) / norm_q

            if sh.shape[1] > 0:  # colour = sum_k basis_k(unit direction) sh_k + 0.5, clamped at 0
                dx, dy, dz = means[i, 0] - centre[0], means[i, 1] - centre[1], means[i, 2] - centre[2]
                norm = max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
                ux, uy, uz = dx / norm, dy / norm, dz / norm
                _sh_bases(ux, uy, uz, bases, n_bases)
                weights[:] = 0.0  # sum over channels of d loss / d basis_k
                for ch in range(3):
                    value = 0.5
                    for k in range(n_bases):
                        value += bases[k] * sh[i, k, ch]
                    if value < 0.0:
                        continue
                    v_c = v_colors[i, ch]
                    for k in range(n_bases):
                        g_sh[i, k, ch] = bases[k] * v_c
                        weights[k] += sh[i, k, ch] * v_c
                gx, gy, gz = _sh_bases_grad(ux, uy, uz, weights, n_bases)
                along = gx * ux + gy * uy + gz * uz
                g_means[i, 0] += (gx - ux * along) / norm
                g_means[i, 1] += (gy - uy * along) / norm
                g_means[i, 2] += (gz - uz * along) / norm
    return g_means, g_quats, g_scales, g_sh
