"""The onyx-openmvs image: its offline sources, bundle-libs, and the wrapper's commands on the real binaries.

bundle-libs is exercised on another real ELF program with many shared libraries (ffmpeg), so it is tested
without the image; the wrapper's command lines are checked against the binaries of the image when it has
been built (`onyx install --build --tools openmvs --openmvs-sources ../shared/vendor`), and skip otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENDOR = (REPO / ".." / "shared" / "vendor").resolve()
IMAGE = "onyx-openmvs:latest"
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


def test_offline_sources_are_staged_for_the_build_and_removed_after(tmp_path):
    from onyx_dagster.install.docker import DockerProblem
    from onyx_dagster.install.images import OPENMVS_TARBALLS, _StagedOpenMvsSources

    source, staging = tmp_path / "vendor", tmp_path / "staging"   # not the real staging folder: a build may use it
    source.mkdir()
    staging.mkdir()
    (staging / "README.md").write_text("kept")
    with pytest.raises(DockerProblem, match="is not a folder"):
        _StagedOpenMvsSources(tmp_path / "nowhere", staging).__enter__()
    (source / OPENMVS_TARBALLS[0]).write_bytes(b"openmvs")
    with pytest.raises(DockerProblem, match=f"lacks {OPENMVS_TARBALLS[1]}"):
        _StagedOpenMvsSources(source, staging).__enter__()
    (source / OPENMVS_TARBALLS[1]).write_bytes(b"vcg")
    with _StagedOpenMvsSources(source, staging):
        assert (staging / OPENMVS_TARBALLS[1]).read_bytes() == b"vcg"
    assert [path.name for path in staging.iterdir()] == ["README.md"]
    # the Dockerfile looks for exactly these names, and checks them against the vendored sha256
    dockerfile = (REPO / "containers" / "openmvs" / "Dockerfile").read_text()
    assert "ARG OPENMVS_SOURCES=containers/openmvs/sources" in dockerfile
    if (VENDOR / "README.md").is_file():
        readme = (VENDOR / "README.md").read_text()
        for name in OPENMVS_TARBALLS:
            sha = re.search(rf"`{re.escape(name)}`\s*\|[^|]*\|\s*`([0-9a-f]{{64}})`", readme).group(1)
            assert sha in dockerfile, name


def _docker_image_present() -> str | None:
    """Why the image tests cannot run, or None."""
    docker = shutil.which("docker")
    if not docker:
        return "no docker CLI"
    probe = subprocess.run([docker, "image", "inspect", IMAGE], capture_output=True, text=True)
    if probe.returncode != 0:
        return (f"{IMAGE} is not built (onyx install --build --cpu-base --tools openmvs --openmvs-sources "
                f"../shared/vendor): {probe.stderr.strip()[:200]}")
    return None


def test_wrapper_commands_use_only_options_the_real_binaries_have(tmp_path):
    """Every binary the wrapper runs is in the image, and every option it passes is one that binary lists."""
    from onyx_openmvs import commands
    from onyx_openmvs.commands import OpenMVSSettings, ScenePaths

    reason = _docker_image_present()
    if reason:
        pytest.skip(reason)
    steps = commands.pipeline(tmp_path / "ws", ScenePaths(tmp_path / "mvs"),
                              OpenMVSSettings(decimate=0.2, refine=True))
    assert {name for name, _ in steps} == set(commands.BINARIES)
    for name, command in steps:
        result = subprocess.run(["docker", "run", "--rm", "--network", "none", "--entrypoint", command[0], IMAGE,
                                 "--help"], capture_output=True, text=True, timeout=120)
        text = result.stdout + result.stderr
        assert "--help" in text, f"{command[0]} --help printed no options: {text[-500:]}"
        for option in (part for part in command[1:] if part.startswith("-")):
            # boost::program_options lists "-w [ --working-folder ] arg" and "--max-threads arg (=0)"
            assert re.search(rf"(^|[\s\[]){re.escape(option)}(\s|$)", text, re.M), \
                f"{name}: {option} is not an option of {command[0]}"
