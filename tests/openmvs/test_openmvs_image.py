"""containers/openmvs/bundle-libs: what makes OpenMVS, compiled in a stage of its own, run on onyx-base.

OpenMVS itself cannot be built here (its sources are on GitHub, which these machines cannot reach), so the
script is exercised on another real ELF program with many shared libraries: ffmpeg.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLE_LIBS = REPO / "containers" / "openmvs" / "bundle-libs"
C_RUNTIME = re.compile(r"^(libc|libm|libdl|librt|libpthread|libstdc\+\+|libgcc_s)\.so|^ld-linux")


def _needed(binary: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """soname -> the path the loader resolves it to (``not found`` when it cannot)."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True, env=env).stdout
    return {m.group(1): m.group(2) for m in re.finditer(r"^\s*(\S+) => (\S+)", out, re.M)}


def test_bundle_libs_copies_every_library_but_the_c_runtime(tmp_path):
    prefix = tmp_path / "openmvs"
    (prefix / "bin" / "OpenMVS").mkdir(parents=True)
    program = prefix / "bin" / "OpenMVS" / "ffmpeg"
    shutil.copy2(shutil.which("ffmpeg"), program)
    (prefix / "bin" / "notes.sh").write_text("#!/bin/sh\n")  # not ELF: skipped, not an error
    (prefix / "bin" / "notes.sh").chmod(0o755)

    result = subprocess.run(["sh", str(BUNDLE_LIBS), str(prefix)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr

    bundled = {path.name for path in (prefix / "lib").iterdir()}
    needed = _needed(program)
    expected = {name for name in needed if not C_RUNTIME.search(name)}
    assert len(expected) > 20 and expected <= bundled
    assert not {name for name in bundled if C_RUNTIME.search(name)}
    # with the bundle first on the search path, every library but the C runtime loads from it
    env = {**os.environ, "LD_LIBRARY_PATH": str(prefix / "lib")}
    for name, path in _needed(program, env).items():
        assert path.startswith(str(prefix / "lib")) != bool(C_RUNTIME.search(name)), (name, path)


def test_bundle_libs_refuses_a_prefix_without_programs(tmp_path):
    (tmp_path / "bin").mkdir()
    result = subprocess.run(["sh", str(BUNDLE_LIBS), str(tmp_path)], capture_output=True, text=True)
    assert result.returncode != 0 and "no executable" in result.stderr
