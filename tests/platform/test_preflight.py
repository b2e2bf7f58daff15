"""What a run needs, checked before it starts: `onyx install --weights` and the preflight of the verbs.

The SegFormer weights here are a tiny random checkpoint that the tests build and save with
``save_pretrained`` (tests/conftest.py); `onyx install --weights --weights-from` installs them through
the same copy, record, verify and load path as a download. The model hub download itself is the one
thing not run here (no network).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components import require
from onyx_dagster.cli import main
from onyx_dagster.install.weights import MANIFEST, segformer_folder, weights_problem

REPO = Path(__file__).resolve().parents[2]
STONE_SIGN = (REPO / ".." / "shared" / "datasets" / "real_videos" / "stone_sign.mp4").resolve()
OUTDOOR = ["--scene", "outdoor", "--mode", "gaussian", "--quality", "proto", "--interval", "0.5"]


def install(*args, weights: Path) -> subprocess.CompletedProcess:
    environ = {**os.environ, "ONYX_WEIGHTS": str(weights), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "onyx_dagster.cli", "install", "--weights", *map(str, args)],
                          env=environ, capture_output=True, text=True, timeout=600)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_install_records_verifies_and_refuses_what_does_not_verify(installed_weights, tiny_segformer, tmp_path):
    folder = segformer_folder(installed_weights)
    record = json.loads((folder / MANIFEST).read_text())
    assert record["origin"] == str(tiny_segformer.resolve())
    assert record["files"]["model.safetensors"]["sha256"] == sha256(tiny_segformer / "model.safetensors")
    assert record["files"]["config.json"]["sha256"] == sha256(tiny_segformer / "config.json")
    assert weights_problem(folder) is None
    assert not list(installed_weights.glob(".tmp-*"))  # the staging folder took the target's place

    again = install("--weights-from", tiny_segformer, weights=installed_weights)
    assert again.returncode == 0 and "already installed" in again.stdout, again.stdout + again.stderr
    verified = install("--verify", weights=installed_weights)
    assert verified.returncode == 0 and "verified: 3 files match their sha256" in verified.stdout, verified.stderr

    damaged = tmp_path / "damaged"
    shutil.copytree(installed_weights, damaged)
    weights = segformer_folder(damaged) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF                                     # same size, one byte changed
    weights.write_bytes(bytes(data))
    refused = install("--verify", weights=damaged)
    assert refused.returncode == 2 and "does not match the sha256 recorded" in refused.stderr, refused.stderr
    weights.write_bytes(bytes(data[:1000]))                          # truncated: the preflight sees it
    assert "1000 bytes" in weights_problem(segformer_folder(damaged))

    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "config.json").write_text("{}")
    bad = install("--weights-from", tmp_path / "not-a-model", weights=tmp_path / "w2")
    assert bad.returncode == 2 and "is not a saved SegFormer checkpoint" in bad.stderr
    assert "Traceback" not in bad.stderr and not segformer_folder(tmp_path / "w2").exists()
    offline = install(weights=tmp_path / "w3")  # the hub, with no network: one line with the way out
    assert offline.returncode == 2 and "--weights-from DIR" in offline.stderr and "Traceback" not in offline.stderr
    assert not segformer_folder(tmp_path / "w3").exists()


@pytest.fixture
def real_cli(monkeypatch, tmp_path, capsys):
    """`onyx` in this process on the real code location, a fresh data root; (code, stdout, stderr)."""
    require("datasets", STONE_SIGN.is_file(), f"{STONE_SIGN} is absent (../shared/datasets)")
    for name in ("ONYX_DEFINITIONS", "DAGSTER_HOME", "ONYX_DATA", "ONYX_SEGFORMER_WEIGHTS", "ONYX_MASKS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ONYX_WEIGHTS", str(tmp_path / "no-weights"))
    root = tmp_path / "data"

    def onyx(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    onyx.root = root
    return onyx


def test_run_refused_up_front_without_weights_or_planned_without_masks(real_cli, installed_weights, monkeypatch):
    root = real_cli.root
    code, out, err = real_cli("run", "-i", STONE_SIGN, "-o", root, *OUTDOOR)
    assert code == 2, out + err
    assert "cannot start, nothing was written" in err and "masks: SegFormer weights are not installed" in err
    assert "onyx install --weights" in err and "--masks off" in err
    assert not root.exists() and not (root.parent / "dagster-home").exists()
    code, out, err = real_cli("run", "-i", STONE_SIGN, "-o", root, *OUTDOOR, "--masks", "off", "--dry-run")
    assert code == 0, err
    assert "masks: off (--masks off or ONYX_MASKS=off)" in out and "reconstruction, viewer" in out
    monkeypatch.setenv("ONYX_MASKS", "off")  # the settings field says the same
    code, out, err = real_cli("run", "-i", STONE_SIGN, "-o", root, *OUTDOOR, "--dry-run")
    assert code == 0 and "masks: off" in out, err
    monkeypatch.delenv("ONYX_MASKS")
    monkeypatch.setenv("ONYX_WEIGHTS", str(installed_weights))
    code, out, err = real_cli("run", "-i", STONE_SIGN, "-o", root, *OUTDOOR, "--dry-run")
    assert code == 0 and "reconstruction, masks, viewer" in out, err
    code, out, err = real_cli("run", "-i", STONE_SIGN, "-o", root, "--scene", "indoor", "--mode", "gaussian",
                              "--quality", "proto", "--dry-run")   # indoor scenes are not masked: no weights needed
    assert code == 0, err


def test_run_refused_when_the_disk_cannot_hold_the_frames(real_cli, installed_weights, monkeypatch):
    """The estimate is frames x resolution; the file system's free space is what it is compared with."""
    import onyx_dagster.preflight as preflight

    monkeypatch.setenv("ONYX_WEIGHTS", str(installed_weights))
    usage = shutil.disk_usage(REPO)
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: usage._replace(free=50 * 1024 ** 2))
    code, out, err = real_cli("run", "-i", STONE_SIGN, "-o", real_cli.root, *OUTDOOR)
    assert code == 2 and "0.0 GB free on" in err and "this run writes about" in err and "images of" in err, err
    assert not real_cli.root.exists()


def test_gpu_only_recipe_refused_without_a_gpu(real_cli):
    from onyx_tools.gpu import cuda_available

    require("no-cuda", not cuda_available(), "this host has a CUDA GPU: MILo may run")
    code, out, err = real_cli("run", "-i", STONE_SIGN, "-o", real_cli.root, "--scene", "indoor", "--mode", "gaussian",
                              "--quality", "production", "--dry-run")
    assert code == 2 and "recipe gaussian-production needs an NVIDIA GPU" in err, err
    assert "--mode gaussian --quality proto runs on the CPU" in err


def test_docker_runner_without_docker_refused_up_front(tmp_path):
    require("datasets", STONE_SIGN.is_file(), f"{STONE_SIGN} is absent (../shared/datasets)")
    environ = {k: v for k, v in os.environ.items() if k not in ("ONYX_DEFINITIONS", "DAGSTER_HOME", "ONYX_DATA")}
    environ.update(ONYX_RUNNER="docker", DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock", ONYX_MASKS="off")
    done = subprocess.run([sys.executable, "-m", "onyx_dagster.cli", "run", "-i", str(STONE_SIGN), "-o",
                           str(tmp_path / "data"), *OUTDOOR], env=environ, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and "Docker is not usable" in done.stderr, done.stdout + done.stderr
    assert not (tmp_path / "data").exists()
