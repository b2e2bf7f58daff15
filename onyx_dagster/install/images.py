"""Making the tool images present: pull them from a registry, or build them from the manifest.

``install(build, tools, prefix, tag)`` is what ``onyx install`` calls. Builds skip images
that are present, report progress per image, and one image failing does not stop the
others.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..settings import OnyxSettings
from .docker import (
    INSTALL_HINT,
    REPO,
    DockerProblem,
    NoDockerCli,
    docker_client,
    docker_host,
    has_nvidia_runtime,
    human_size,
    image_name,
    image_present,
    image_size,
    require_cli,
    short,
)
from .manifest import MANIFEST, ServiceSpec, build_order, load_manifest

BOOTSTRAP_BASE = REPO / "scripts" / "docker" / "bootstrap-base.sh"
BUILD_CA_DIR = REPO / "containers" / "base" / "build-ca"
# containers/openmvs/Dockerfile compiles the tarballs it finds here (checked against their sha256)
OPENMVS_SOURCES_DIR = REPO / "containers" / "openmvs" / "sources"
OPENMVS_TARBALLS = ("openMVS-v2.3.0.tar.gz", "VCG-658ba36d.tar.gz")

TOOLS: tuple[str, ...] = ("ingest", "sfm", "gsplat", "segformer", "openmvs", "milo", "viewer")
BASE = "base"
PRODUCTION_ROOT_IMAGE = "pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime"

Printer = Callable[[str], None]


@dataclass
class ImageResult:
    service: str
    image: str
    action: str  # present | built | pulled | failed | skipped
    seconds: float = 0.0
    size_bytes: int | None = None
    message: str = ""


@dataclass
class InstallReport:
    results: list[ImageResult] = field(default_factory=list)
    nvidia_runtime: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(result.action != "failed" for result in self.results)

    def result(self, service: str) -> ImageResult | None:
        return next((r for r in self.results if r.service == service), None)


def _log_dir() -> Path:
    path = OnyxSettings.from_env().docker_cache or Path("~/.cache/onyx-docker").expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


_STEP = re.compile(r"^(Step \d+/\d+ : .*|#\d+ \[[^\]]+\] .*)$")


def build_image(spec: ServiceSpec, *, network: str | None = None, out: Printer = print,
                label: str = "", log_path: Path | None = None) -> float:
    """``docker build`` one service of the manifest; returns seconds. Raises DockerProblem on failure."""
    docker = require_cli()
    dockerfile = (REPO / spec.context / spec.dockerfile).resolve()
    if not dockerfile.is_file():
        raise DockerProblem(f"{spec.name}: {dockerfile.relative_to(REPO)} does not exist (no Dockerfile for this tool yet)")
    command = [docker, "build", "-f", str(dockerfile), "-t", spec.image]
    for key, value in spec.args.items():
        command += ["--build-arg", f"{key}={value}"]
    net = network or spec.network
    if net and net != "default":
        command += ["--network", net]
    command.append(str((REPO / spec.context).resolve()))
    log_path = log_path or _log_dir() / f"build-{spec.name}.log"
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   errors="replace", cwd=REPO)
        assert process.stdout is not None
        try:
            for line in process.stdout:
                log.write(line)
                step = line.rstrip("\n")
                if _STEP.match(step):
                    out(f"{label}{spec.image}: {step[:150]}")
        except BaseException:
            process.terminate()
            process.wait(timeout=30)
            raise
        code = process.wait()
    seconds = time.monotonic() - started
    if code != 0:
        text = Path(log_path).read_text(encoding="utf-8", errors="replace")
        hint = build_failure_hint(text)
        raise DockerProblem(f"building {spec.image} failed (exit {code}; log {log_path}):\n    "
                            + "\n    ".join(text.splitlines()[-15:]) + (f"\n{hint}" if hint else ""))
    return seconds


def build_failure_hint(log: str) -> str | None:
    """The fix for a build failure whose cause the log names, where there is one to give."""
    if "CERTIFICATE_VERIFY_FAILED" in log:
        # pip in the build trusts only its own CAs; a proxy that re-signs TLS is trusted by the host's store
        return ("pip in the build could not verify the package index's certificate (a proxy that re-signs "
                "TLS?): build again with the CA bundle that trusts it, e.g. --ca-bundle "
                "/etc/ssl/certs/ca-certificates.crt (ONYX_BUILD_CA_BUNDLE)")
    return None


def pull_image(client, name: str, *, out: Printer = print, label: str = "", every_s: float = 3.0) -> float:
    """Pull with a progress line every few seconds (bytes done over bytes known, per image)."""
    import docker.errors

    repository, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "latest")
    started = time.monotonic()
    layers: dict[str, tuple[int, int]] = {}
    last = 0.0
    try:
        for event in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
            if "error" in event:
                raise DockerProblem(f"pulling {name} failed: {event['error']}")
            layer, detail = event.get("id"), event.get("progressDetail") or {}
            if layer and detail.get("total"):
                layers[layer] = (int(detail.get("current") or 0), int(detail["total"]))
            elif layer and event.get("status") in ("Download complete", "Pull complete", "Already exists"):
                done, total = layers.get(layer, (0, 0))
                layers[layer] = (total, total)
            now = time.monotonic()
            if now - last >= every_s and layers:
                last = now
                done = sum(d for d, _ in layers.values())
                total = sum(t for _, t in layers.values())
                out(f"{label}{name}: pulling {100 * done / max(total, 1):.0f}% of {human_size(total)} ({len(layers)} layers)")
    except docker.errors.DockerException as error:
        raise DockerProblem(f"pulling {name} failed: {short(error)}") from None
    return time.monotonic() - started


class _StagedCaBundle:
    """Copies a CA bundle to containers/base/build-ca/ca.crt for the builds, then removes it."""

    def __init__(self, source: str | None):
        self.source = Path(source).expanduser() if source else None
        self.target = BUILD_CA_DIR / "ca.crt"
        self.created = False

    def __enter__(self):
        if self.source is None:
            return self
        if not self.source.is_file():
            raise DockerProblem(f"CA bundle {self.source} does not exist (--ca-bundle / ONYX_BUILD_CA_BUNDLE)")
        BUILD_CA_DIR.mkdir(parents=True, exist_ok=True)
        if not (self.target.is_file() and self.target.read_bytes() == self.source.read_bytes()):
            shutil.copyfile(self.source, self.target)
            self.created = True
        return self

    def __exit__(self, *exc):
        if self.created:
            self.target.unlink(missing_ok=True)


class _StagedOpenMvsSources:
    """Copies the OpenMVS and VCG tarballs of a folder into the build context for the builds, then removes them.

    A folder outside the repository cannot be named to ``docker build`` (one build context; Debian's
    Docker has no additional contexts), so the tarballs travel in containers/openmvs/sources/.
    """

    def __init__(self, source: str | Path | None, folder: Path = OPENMVS_SOURCES_DIR):
        self.source = Path(source).expanduser() if source else None
        self.folder = folder
        self.created: list[Path] = []

    def __enter__(self):
        if self.source is None:
            return self
        if not self.source.is_dir():
            raise DockerProblem(f"OpenMVS sources {self.source} is not a folder (--openmvs-sources / "
                                "ONYX_OPENMVS_SOURCES: the folder holding " + " and ".join(OPENMVS_TARBALLS) + ")")
        missing = [name for name in OPENMVS_TARBALLS if not (self.source / name).is_file()]
        if missing:
            raise DockerProblem(f"OpenMVS sources {self.source} lacks {', '.join(missing)} (--openmvs-sources / "
                                "ONYX_OPENMVS_SOURCES needs both " + " and ".join(OPENMVS_TARBALLS) + ")")
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in OPENMVS_TARBALLS:
            target = self.folder / name
            if not (target.is_file() and target.stat().st_size == (self.source / name).stat().st_size
                    and target.read_bytes() == (self.source / name).read_bytes()):
                shutil.copyfile(self.source / name, target)
                self.created.append(target)
        return self

    def __exit__(self, *exc):
        for target in self.created:
            target.unlink(missing_ok=True)


def bootstrap_cpu_base(image: str, *, out: Printer = print, force: bool = False) -> str:
    """Run scripts/docker/bootstrap-base.sh (cached) and return the root image it made."""
    out(f"root image {image}: debootstrap + docker import (cached; scripts/docker/bootstrap-base.sh)")
    command = ["bash", str(BOOTSTRAP_BASE), "--image", image] + (["--force"] if force else [])
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    for line in (result.stderr or "").splitlines():
        out(f"  {line}")
    if result.returncode != 0:
        raise DockerProblem(f"making the offline root image {image} failed (exit {result.returncode})")
    return image


def install(
    build: bool = False,
    tools: Sequence[str] | None = None,
    prefix: str = "",
    tag: str = "latest",
    *,
    root_image: str | None = None,
    cpu_base: bool = False,
    ca_bundle: str | None = None,
    openmvs_sources: str | Path | None = None,
    network: str | None = None,
    pip_index_url: str | None = None,
    pip_extra_index_url: str | None = None,
    pip_trusted_host: str | None = None,
    force: bool = False,
    manifest: Path = MANIFEST,
    settings: OnyxSettings | None = None,
    out: Printer = print,
) -> InstallReport:
    """Make the tool images present: pull them (``build=False``) or build them from the manifest.

    Images already present are skipped (``force`` rebuilds/re-pulls them). With ``build``, onyx-base is
    built first when a tool needs building and it is missing. ``cpu_base`` builds onyx-base on the offline
    Debian root image (no registry needed) instead of the CUDA/PyTorch one (``root_image`` overrides
    both). Options left None come from ``settings`` (ONYX_BUILD_CA_BUNDLE, ONYX_BUILD_NETWORK,
    ONYX_PIP_*, ONYX_ROOT_IMAGE, ONYX_ROOTFS_IMAGE, ONYX_OPENMVS_SOURCES). ``openmvs_sources`` is a folder
    with the OpenMVS and VCG tarballs the openmvs image compiles instead of cloning GitHub (air-gapped sites).

    Raises NoDockerCli / DaemonNotRunning before doing anything; per-image failures are in the report.
    """
    wanted = list(tools or TOOLS)
    unknown = [tool for tool in wanted if tool not in TOOLS and tool != BASE]
    if unknown:
        raise ValueError(f"unknown tool(s) {', '.join(unknown)}: choose from {', '.join(TOOLS)}")
    if build:
        require_cli()
    client = docker_client()
    report = InstallReport(nvidia_runtime=has_nvidia_runtime(client))

    settings = settings or OnyxSettings.from_env()
    prefix = prefix if (not prefix or prefix.endswith(("/", "-", "_"))) else prefix + "/"
    # The manifest's own variables (compose interpolation), with the settings' values for Onyx's.
    env = {**os.environ, "ONYX_IMAGE_PREFIX": prefix, "ONYX_IMAGE_TAG": tag}
    for key, value in (("ONYX_ROOT_IMAGE", root_image or settings.root_image),
                       ("ONYX_BUILD_NETWORK", network or settings.build_network),
                       ("ONYX_PIP_INDEX_URL", pip_index_url or settings.pip_index_url),
                       ("ONYX_PIP_EXTRA_INDEX_URL", pip_extra_index_url or settings.pip_extra_index_url),
                       ("ONYX_PIP_TRUSTED_HOST", pip_trusted_host or settings.pip_trusted_host)):
        if value:
            env[key] = value
    root_image = env.get("ONYX_ROOT_IMAGE")
    ca_bundle = ca_bundle or (str(settings.build_ca_bundle) if settings.build_ca_bundle else None)
    openmvs_sources = openmvs_sources or settings.openmvs_sources
    services = load_manifest(manifest, env)

    if not build:
        if not prefix:
            raise DockerProblem("pulling needs a registry: pass --prefix ghcr.io/ORG/ (or set ONYX_IMAGE_PREFIX); "
                                "on a machine without a registry build the images instead: " + INSTALL_HINT)
        targets = [tool for tool in wanted if tool != BASE]
        for index, tool in enumerate(targets, 1):
            name = services[tool].image if tool in services else image_name(tool, prefix, tag)
            label = f"[{index}/{len(targets)}] "
            if image_present(client, name) and not force:
                report.results.append(ImageResult(tool, name, "present", size_bytes=image_size(client, name)))
                out(f"{label}{name}: present, skipped")
                continue
            out(f"{label}{name}: pulling")
            try:
                seconds = pull_image(client, name, out=out, label=label)
                report.results.append(ImageResult(tool, name, "pulled", seconds, image_size(client, name)))
                out(f"{label}{name}: pulled in {seconds:.0f} s ({human_size(image_size(client, name))})")
            except DockerProblem as error:
                report.results.append(ImageResult(tool, name, "failed", message=str(error)))
                out(f"{label}{name}: FAILED: {error}")
    else:
        order = build_order(services, wanted)
        todo = [name for name in order
                if force and name in wanted or not image_present(client, services[name].image)]
        for name in order:
            if name not in todo:
                size = image_size(client, services[name].image)
                report.results.append(ImageResult(name, services[name].image, "present", size_bytes=size))
                out(f"{services[name].image}: present, skipped")
        # onyx-base and the OpenMVS compile stage are built FROM the root image
        if cpu_base and not root_image and (BASE in todo or "openmvs" in todo):
            try:
                env["ONYX_ROOT_IMAGE"] = bootstrap_cpu_base(settings.rootfs_image, out=out)
                services = load_manifest(manifest, env)
            except DockerProblem as error:
                report.results.append(ImageResult(BASE, services[BASE].image, "failed", message=str(error)))
                out(f"{services[BASE].image}: FAILED: {error}")
        failed: set[str] = {r.service for r in report.results if r.action == "failed"}
        sources = openmvs_sources if "openmvs" in todo else None
        with _StagedCaBundle(ca_bundle), _StagedOpenMvsSources(sources):
            for index, name in enumerate(todo, 1):
                spec = services[name]
                label = f"[{index}/{len(todo)}] "
                if name in failed:
                    continue
                broken = [dep for dep in spec.depends_on if dep in failed]
                if broken:
                    failed.add(name)
                    report.results.append(ImageResult(name, spec.image, "skipped",
                                                      message=f"needs {', '.join(broken)}, which failed"))
                    out(f"{label}{spec.image}: skipped ({', '.join(broken)} failed)")
                    continue
                out(f"{label}{spec.image}: building ({spec.dockerfile})")
                try:
                    seconds = build_image(spec, out=out, label=label)
                except DockerProblem as error:
                    failed.add(name)
                    report.results.append(ImageResult(name, spec.image, "failed", message=str(error)))
                    out(f"{label}{spec.image}: FAILED: {error}")
                    continue
                size = image_size(client, spec.image)
                report.results.append(ImageResult(name, spec.image, "built", seconds, size))
                out(f"{label}{spec.image}: built in {seconds:.0f} s ({human_size(size)})")
    if not report.nvidia_runtime:
        warning = ("no NVIDIA runtime in Docker on this host: GPU steps run on the CPU (gpu_policy=prefer) "
                   "or fail (gpu_policy=require); for GPUs install the NVIDIA driver and "
                   "nvidia-container-toolkit (nvidia-ctk runtime configure --runtime=docker, restart dockerd)")
        report.warnings.append(warning)
        out("note: " + warning)
    return report


def status(prefix: str = "", tag: str = "latest", out: Printer = print) -> int:
    try:
        require_cli()
    except NoDockerCli as error:
        out(f"docker CLI: MISSING: {error}")
    client = docker_client()
    info = client.version()
    out(f"docker daemon: {docker_host()} (Docker {info.get('Version')}, API {info.get('ApiVersion')})")
    out(f"NVIDIA runtime: {'yes' if has_nvidia_runtime(client) else 'no'}")
    missing = 0
    for tool in (BASE, *TOOLS):
        name = image_name(tool, prefix, tag)
        present = image_present(client, name)
        missing += 0 if present or tool == BASE else 1
        out(f"  {name:40s} {'present ' + human_size(image_size(client, name)) if present else 'missing'}")
    return 0 if not missing else 1
