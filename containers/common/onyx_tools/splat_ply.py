"""The standard 3D Gaussian Splatting PLY (what SuperSplat, the INRIA viewer and gsplat read).

Binary little-endian, one vertex per Gaussian, float32 properties in this order:
x y z nx ny nz f_dc_0..2 f_rest_0..(3*K-1) opacity scale_0..2 rot_0..3
with opacity as a logit, scales as logs, rot as a (w, x, y, z) quaternion and f_rest
stored channel-major (all R coefficients, then G, then B), as the reference code writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ToolError


@dataclass
class GaussianCloud:
    means: np.ndarray      # (N, 3)
    sh_dc: np.ndarray      # (N, 3)      degree-0 SH coefficients
    sh_rest: np.ndarray    # (N, K, 3)   higher-degree SH coefficients (K = 0, 3, 8 or 15)
    opacities: np.ndarray  # (N,)        logits
    scales: np.ndarray     # (N, 3)      log scales
    quats: np.ndarray      # (N, 4)      w, x, y, z

    def __len__(self) -> int:
        return int(self.means.shape[0])

    def subset(self, keep: np.ndarray) -> "GaussianCloud":
        return GaussianCloud(self.means[keep], self.sh_dc[keep], self.sh_rest[keep],
                             self.opacities[keep], self.scales[keep], self.quats[keep])


def _property_names(rest_coeffs: int) -> list[str]:
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(3 * rest_coeffs)]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    return names


class SplatFormatError(ToolError):
    pass


def write_splat_ply(path: Path, cloud: GaussianCloud) -> None:
    """Write ``cloud``; written to a temporary name and renamed, so readers never see half a file."""
    n = len(cloud)
    k = cloud.sh_rest.shape[1] if cloud.sh_rest.ndim == 3 else 0
    rest = cloud.sh_rest.reshape(n, k, 3).transpose(0, 2, 1).reshape(n, 3 * k)  # channel-major
    columns = [cloud.means, np.zeros((n, 3)), cloud.sh_dc, rest, cloud.opacities.reshape(n, 1),
               cloud.scales, cloud.quats]
    data = np.concatenate([np.asarray(c, dtype=np.float32).reshape(n, -1) for c in columns], axis=1)
    names = _property_names(k)
    header = "ply\nformat binary_little_endian 1.0\n" + f"element vertex {n}\n"
    header += "".join(f"property float {name}\n" for name in names) + "end_header\n"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    with open(tmp, "wb") as handle:
        handle.write(header.encode("ascii"))
        handle.write(data.astype("<f4", copy=False).tobytes())
    os.replace(tmp, path)


def _read_header(handle) -> tuple[int, list[tuple[str, str]], str]:
    first = handle.readline()
    if first.strip() != b"ply":
        raise SplatFormatError("not a PLY file (no 'ply' magic line)")
    count, props, fmt = None, [], ""
    in_vertex = False
    while True:
        line = handle.readline()
        if not line:
            raise SplatFormatError("PLY header has no end_header line")
        text = line.decode("ascii", "replace").strip()
        if text == "end_header":
            break
        parts = text.split()
        if not parts:
            continue
        if parts[0] == "format":
            fmt = parts[1]
        elif parts[0] == "element":
            in_vertex = parts[1] == "vertex"
            if in_vertex:
                count = int(parts[2])
        elif parts[0] == "property" and in_vertex:
            props.append((parts[1], parts[-1]))
    if count is None:
        raise SplatFormatError("PLY has no vertex element")
    return count, props, fmt


def read_splat_ply(path: Path) -> GaussianCloud:
    """Read and validate a 3DGS PLY; raise ``SplatFormatError`` saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise SplatFormatError(f"splat PLY {path} does not exist")
    with open(path, "rb") as handle:
        count, props, fmt = _read_header(handle)
        if fmt != "binary_little_endian":
            raise SplatFormatError(f"{path}: format {fmt!r}, expected binary_little_endian")
        if any(kind != "float" for kind, _ in props):
            raise SplatFormatError(f"{path}: every property must be float32")
        names = [name for _, name in props]
        rest = sorted((n for n in names if n.startswith("f_rest_")), key=lambda n: int(n.split("_")[-1]))
        k = len(rest) // 3
        required = _property_names(k)
        missing = [n for n in required if n not in names and n not in ("nx", "ny", "nz")]
        if missing or len(rest) % 3:
            raise SplatFormatError(f"{path}: not a 3DGS splat, missing properties {missing[:6]}")
        raw = handle.read()
    expected = count * len(names) * 4
    if len(raw) < expected:
        raise SplatFormatError(f"{path}: truncated ({len(raw)} of {expected} data bytes)")
    table = np.frombuffer(raw[:expected], dtype="<f4").reshape(count, len(names))
    col = {name: i for i, name in enumerate(names)}

    def take(*fields: str) -> np.ndarray:
        return table[:, [col[f] for f in fields]].astype(np.float32)

    rest_cols = [f"f_rest_{i}" for i in range(3 * k)]
    sh_rest = take(*rest_cols).reshape(count, 3, k).transpose(0, 2, 1) if k else np.zeros((count, 0, 3), np.float32)
    cloud = GaussianCloud(
        means=take("x", "y", "z"),
        sh_dc=take("f_dc_0", "f_dc_1", "f_dc_2"),
        sh_rest=np.ascontiguousarray(sh_rest),
        opacities=take("opacity")[:, 0],
        scales=take("scale_0", "scale_1", "scale_2"),
        quats=take("rot_0", "rot_1", "rot_2", "rot_3"),
    )
    if count and not np.isfinite(table).all():
        raise SplatFormatError(f"{path}: holds NaN or infinite values")
    return cloud


def splat_summary(path: Path) -> dict:
    """Validate ``path`` and describe it for metadata."""
    cloud = read_splat_ply(path)
    if len(cloud) == 0:
        return {"gaussians": 0, "sh_degree": 0}
    k = cloud.sh_rest.shape[1]
    degree = {0: 0, 3: 1, 8: 2, 15: 3}.get(k, -1)
    lo, hi = cloud.means.min(axis=0), cloud.means.max(axis=0)
    return {"gaussians": len(cloud), "sh_degree": degree,
            "extent": float(np.linalg.norm(hi - lo)), "size_mb": round(Path(path).stat().st_size / 1e6, 2)}


