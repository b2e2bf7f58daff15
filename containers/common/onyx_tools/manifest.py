"""Content manifests: the data version of a step's output is the hash of what it holds."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_manifest(folder: Path) -> dict[str, str]:
    """Relative POSIX path -> sha256 for every regular file below ``folder``, sorted."""
    folder = Path(folder)
    return {
        path.relative_to(folder).as_posix(): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def manifest_digest(manifest: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name, sha in sorted(manifest.items()):
        digest.update(f"{name}\0{sha}\n".encode())
    return digest.hexdigest()


def data_version(*folders: Path) -> str:
    """A short, stable content hash of one or more output folders (missing ones count as empty)."""
    digest = hashlib.sha256()
    for folder in folders:
        folder = Path(folder)
        manifest = content_manifest(folder) if folder.is_dir() else {}
        digest.update(f"{folder.name}:{manifest_digest(manifest)}\n".encode())
    return digest.hexdigest()[:16]
