"""The build manifest, docker-compose.yml: one service per image, read like compose reads it.

Debian 12 ships Compose v1 (no nested ``${A:-${B:-c}}`` defaults, no additional build
contexts) and no buildx, so ``onyx install --build`` reads the manifest itself and runs
plain ``docker build`` in ``depends_on`` order; ``docker compose build`` (v2) gives the same
images where it exists.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .docker import REPO

MANIFEST = REPO / "docker-compose.yml"


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
