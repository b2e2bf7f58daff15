"""The tool images: names, presence, and installing them (pull from a registry, or build).

    python -m onyx_dagster.images status                     # Docker, NVIDIA runtime, which images exist
    python -m onyx_dagster.images install                    # pull what is missing (needs --prefix/ONYX_REGISTRY)
    python -m onyx_dagster.images install --build            # build what is missing (docker-compose.yml)
    python -m onyx_dagster.images install --build --cpu-base --tools ingest sfm
                                                             # no registry at all: Debian base (debootstrap)

``install(build, tools, prefix, tag)`` is what ``onyx install`` calls. The build manifest is the
repository's docker-compose.yml (``docker compose build`` gives the same images); this module reads it
so that builds also work where only the plain ``docker`` CLI exists, in ``depends_on`` order, skipping
images that are present, with progress per image. One image failing does not stop the others.

Problems are reported as ``DockerProblem`` subclasses whose message says what to do: no docker CLI,
daemon not running, image missing, no NVIDIA runtime.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "docker-compose.yml"
BOOTSTRAP_BASE = REPO / "scripts" / "docker" / "bootstrap-base.sh"
START_DOCKERD = REPO / "scripts" / "docker" / "start-dockerd.sh"
BUILD_CA_DIR = REPO / "containers" / "base" / "build-ca"

TOOLS: tuple[str, ...] = ("ingest", "sfm", "gsplat", "segformer", "openmvs", "milo")
BASE = "base"
PRODUCTION_ROOT_IMAGE = "pytorch/pytorch:2.13.0-cuda12.8-cudnn9-runtime"
OFFLINE_ROOT_IMAGE = "onyx-rootfs:bookworm"
INSTALL_HINT = "onyx install --build (or: python -m onyx_dagster.images install --build; docker compose build)"

# The labels every container the Docker runner starts carries (see resources/docker_runner.py).
LABEL_MANAGED = "onyx.managed"

Printer = Callable[[str], None]


# --------------------------------------------------------------------------------------------- problems

class DockerProblem(RuntimeError):
    """Docker cannot do what was asked; the message says why and what to do."""


class NoDockerCli(DockerProblem):
    pass


class DaemonNotRunning(DockerProblem):
    pass


class ImageMissing(DockerProblem):
    pass


class NoNvidiaRuntime(DockerProblem):
    pass


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def require_cli() -> str:
    path = shutil.which("docker")
    if not path:
        raise NoDockerCli(
            "no docker CLI on PATH: install Docker (Debian/Ubuntu: apt-get install docker.io; or Docker "
            f"Engine from docs.docker.com; on this project's machines: sudo {START_DOCKERD.relative_to(REPO)})")
    return path


def daemon_down_message(error: object | None = None) -> str:
    detail = f" ({_short(error)})" if error else ""
    return (f"the Docker daemon at {docker_host()} is not running or not reachable{detail}: start it "
            f"(sudo systemctl start docker; on machines without systemd: sudo "
            f"{START_DOCKERD.relative_to(REPO)}), check DOCKER_HOST and that your user may use the socket "
            "(the docker group), or run the steps without Docker (ONYX_RUNNER=local)")


def docker_client(timeout: int = 60):
    """A docker SDK client that has answered a ping, or DaemonNotRunning."""
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except docker.errors.DockerException as error:
        raise DaemonNotRunning(daemon_down_message(error)) from None
    except Exception as error:  # requests' connection errors, a bad DOCKER_HOST, ...
        raise DaemonNotRunning(daemon_down_message(error)) from None
    return client


def has_nvidia_runtime(client) -> bool:
    """Whether containers on this daemon can get NVIDIA GPUs (--gpus / device requests).

    True when the daemon lists an ``nvidia`` runtime or the NVIDIA container hook is installed next to
    a local daemon (that is what serves ``--gpus`` with the default runc runtime).
    """
    try:
        runtimes = client.info().get("Runtimes") or {}
    except Exception:
        runtimes = {}
    if "nvidia" in runtimes:
        return True
    local = docker_host().startswith("unix://")
    return local and bool(shutil.which("nvidia-container-runtime-hook") or shutil.which("nvidia-ctk"))


def no_nvidia_message() -> str:
    return ("no NVIDIA runtime in Docker: GPU steps cannot get a GPU on this host. Install the NVIDIA "
            "driver and nvidia-container-toolkit (nvidia-ctk runtime configure --runtime=docker; restart "
            "dockerd), or set the docker runner's gpu_policy to 'prefer' (ONYX_GPU_POLICY=prefer) to run "
            "those steps on the CPU where the tool supports it")


# --------------------------------------------------------------------------------------------- names

def image_name(tool: str, prefix: str = "", tag: str = "latest") -> str:
    if prefix and not prefix.endswith(("/", "-", "_")):
        prefix += "/"
    return f"{prefix}onyx-{tool}:{tag}"


def image_present(client, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def missing_image_message(name: str, tool: str) -> str:
    return (f"Docker image {name} is not installed: build it with `onyx install --build --tools {tool}` "
            f"(python -m onyx_dagster.images install --build --tools {tool}; or docker compose build {tool}), "
            "or pull it with `onyx install` from a registry (--prefix / ONYX_REGISTRY)")


def image_size(client, name: str) -> int | None:
    try:
        return int(client.images.get(name).attrs.get("Size") or 0)
    except Exception:
        return None


# --------------------------------------------------------------------------------------------- manifest

@dataclass(frozen=True)
class ServiceSpec:
    """One service of docker-compose.yml, interpolated."""

    name: str
    image: str
    dockerfile: str
    context: str
    args: Mapping[str, str]
    network: str | None
    depends_on: tuple[str, ...]


# innermost references only (no "$" in a default): nested defaults resolve from the inside out
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^${}]*))?\}")
_ESCAPED_DOLLAR = "\0"


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, nested defaults and ``$$``."""

    def replace(match: re.Match) -> str:
        name, op, default = match.group("name"), match.group("op"), match.group("default") or ""
        current = env.get(name)
        if op == ":-":
            return current if current else default
        if op == "-":
            return current if current is not None else default
        return current or ""

    value = value.replace("$$", _ESCAPED_DOLLAR)
    for _ in range(8):  # nesting depth; a manifest never comes close
        value, count = _VAR.subn(replace, value)
        if not count:
            break
    return value.replace(_ESCAPED_DOLLAR, "$")


def _deep_interpolate(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, Mapping):
        return {key: _deep_interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [_deep_interpolate(item, env) for item in value]
    return value


def load_manifest(path: Path = MANIFEST, env: Mapping[str, str] | None = None) -> dict[str, ServiceSpec]:
    import yaml

    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    environment = dict(os.environ if env is None else env)
    services = {}
    for name, service in (raw.get("services") or {}).items():
        service = _deep_interpolate(service, environment)
        build = service.get("build") or {}
        if isinstance(build, str):
            build = {"context": build}
        args = build.get("args") or {}
        if isinstance(args, list):
            args = dict(item.split("=", 1) if "=" in item else (item, environment.get(item, "")) for item in args)
        depends = service.get("depends_on") or []
        if isinstance(depends, Mapping):
            depends = list(depends)
        services[name] = ServiceSpec(
            name=name,
            image=service.get("image") or f"onyx-{name}:latest",
            dockerfile=build.get("dockerfile", "Dockerfile"),
            context=build.get("context", "."),
            args={key: "" if value is None else str(value) for key, value in args.items()},
            network=build.get("network") or None,
            depends_on=tuple(depends),
        )
    return services


def build_order(services: Mapping[str, ServiceSpec], wanted: Iterable[str]) -> list[str]:
    """``wanted`` and what they depend on, dependencies first."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name not in services:
            raise ValueError(f"{name!r} is not a service of {MANIFEST.name}: choose from {', '.join(services)}")
        if name in visiting:
            raise ValueError(f"depends_on cycle through {name!r} in {MANIFEST.name}")
        visiting.add(name)
        for dependency in services[name].depends_on:
            visit(dependency)
        visiting.discard(name)
        order.append(name)

    for name in wanted:
        visit(name)
    return order


# --------------------------------------------------------------------------------------------- build / pull

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


def _short(error: object, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _size(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.0f} MB"


def _log_dir() -> Path:
    base = os.environ.get("ONYX_DOCKER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "onyx-docker")
    path = Path(base)
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
    env = dict(os.environ)
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   errors="replace", cwd=REPO, env=env)
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
        tail = Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise DockerProblem(f"building {spec.image} failed (exit {code}; log {log_path}):\n    "
                            + "\n    ".join(tail))
    return seconds


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
                out(f"{label}{name}: pulling {100 * done / max(total, 1):.0f}% of {_size(total)} ({len(layers)} layers)")
    except docker.errors.DockerException as error:
        raise DockerProblem(f"pulling {name} failed: {_short(error)}") from None
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


def bootstrap_cpu_base(*, out: Printer = print, force: bool = False) -> str:
    """Run scripts/docker/bootstrap-base.sh (cached) and return the root image it made."""
    image = os.environ.get("ONYX_ROOTFS_IMAGE", OFFLINE_ROOT_IMAGE)
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
    network: str | None = None,
    pip_index_url: str | None = None,
    pip_extra_index_url: str | None = None,
    pip_trusted_host: str | None = None,
    force: bool = False,
    manifest: Path = MANIFEST,
    out: Printer = print,
) -> InstallReport:
    """Make the tool images present: pull them (``build=False``) or build them from the manifest.

    Images already present are skipped (``force`` rebuilds/re-pulls them). With ``build``, onyx-base is
    built first when a tool needs building and it is missing. ``cpu_base`` builds onyx-base on the offline
    Debian root image (no registry needed) instead of the CUDA/PyTorch one (``root_image`` overrides
    both). Build options default from the environment: ONYX_BUILD_CA_BUNDLE, ONYX_BUILD_NETWORK,
    ONYX_PIP_INDEX_URL, ONYX_PIP_EXTRA_INDEX_URL, ONYX_PIP_TRUSTED_HOST.

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

    env = dict(os.environ)
    env["ONYX_REGISTRY"] = prefix if (not prefix or prefix.endswith(("/", "-", "_"))) else prefix + "/"
    env["ONYX_TAG"] = tag
    if root_image:
        env["ONYX_ROOT_IMAGE"] = root_image
    for key, value in (("ONYX_BUILD_NETWORK", network), ("ONYX_PIP_INDEX_URL", pip_index_url),
                       ("ONYX_PIP_EXTRA_INDEX_URL", pip_extra_index_url),
                       ("ONYX_PIP_TRUSTED_HOST", pip_trusted_host)):
        if value is not None:
            env[key] = value
    ca_bundle = ca_bundle if ca_bundle is not None else (os.environ.get("ONYX_BUILD_CA_BUNDLE") or None)
    services = load_manifest(manifest, env)

    if not build:
        if not env["ONYX_REGISTRY"]:
            raise DockerProblem("pulling needs a registry: pass --prefix ghcr.io/ORG/ (or set ONYX_REGISTRY); "
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
                out(f"{label}{name}: pulled in {seconds:.0f} s ({_size(image_size(client, name))})")
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
        if BASE in todo and cpu_base and not root_image:
            try:
                env["ONYX_ROOT_IMAGE"] = bootstrap_cpu_base(out=out)
                services = load_manifest(manifest, env)
            except DockerProblem as error:
                report.results.append(ImageResult(BASE, services[BASE].image, "failed", message=str(error)))
                out(f"{services[BASE].image}: FAILED: {error}")
        failed: set[str] = {r.service for r in report.results if r.action == "failed"}
        with _StagedCaBundle(ca_bundle):
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
                out(f"{label}{spec.image}: built in {seconds:.0f} s ({_size(size)})")
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
        out(f"  {name:40s} {'present ' + _size(image_size(client, name)) if present else 'missing'}")
    return 0 if not missing else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m onyx_dagster.images", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("install", "status"):
        command = sub.add_parser(name)
        command.add_argument("--prefix", default=os.environ.get("ONYX_REGISTRY", ""),
                             help="registry prefix, e.g. ghcr.io/ORG/ (ONYX_REGISTRY)")
        command.add_argument("--tag", default=os.environ.get("ONYX_TAG", "latest"), help="image tag (ONYX_TAG)")
    install_cmd = sub.choices["install"]
    install_cmd.add_argument("--build", action="store_true", help="build from docker-compose.yml instead of pulling")
    install_cmd.add_argument("--tools", nargs="+", choices=(BASE, *TOOLS), help="default: all tools")
    install_cmd.add_argument("--cpu-base", action="store_true",
                             help="no registry: build onyx-base on a debootstrapped Debian root image (CPU only)")
    install_cmd.add_argument("--root-image", default=None,
                             help="what onyx-base is built FROM (ONYX_ROOT_IMAGE; default the CUDA/PyTorch runtime)")
    install_cmd.add_argument("--ca-bundle", default=None,
                             help="CA bundle pip trusts during builds, e.g. /etc/ssl/certs/ca-certificates.crt "
                                  "(ONYX_BUILD_CA_BUNDLE)")
    install_cmd.add_argument("--network", default=None, help="network of build steps: default | host (ONYX_BUILD_NETWORK)")
    install_cmd.add_argument("--pip-index-url", default=None, help="ONYX_PIP_INDEX_URL")
    install_cmd.add_argument("--pip-extra-index-url", default=None, help="ONYX_PIP_EXTRA_INDEX_URL")
    install_cmd.add_argument("--pip-trusted-host", default=None, help="ONYX_PIP_TRUSTED_HOST")
    install_cmd.add_argument("--force", action="store_true", help="rebuild / re-pull images that are present")
    args = parser.parse_args(argv)

    def say(line: str) -> None:
        print(line, flush=True)

    try:
        if args.command == "status":
            return status(args.prefix, args.tag, out=say)
        report = install(
            build=args.build, tools=args.tools, prefix=args.prefix, tag=args.tag, root_image=args.root_image,
            cpu_base=args.cpu_base, ca_bundle=args.ca_bundle, network=args.network,
            pip_index_url=args.pip_index_url, pip_extra_index_url=args.pip_extra_index_url,
            pip_trusted_host=args.pip_trusted_host, force=args.force, out=say)
    except (DockerProblem, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    bad = [r for r in report.results if r.action in ("failed", "skipped")]
    say(f"{len(report.results) - len(bad)} image(s) ready, {len(bad)} not"
        + (": " + ", ".join(f"{r.image} ({r.action})" for r in bad) if bad else ""))
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
