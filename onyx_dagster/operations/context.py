"""Where a batch operation works: a data root, its Dagster instance and the code location.

The rule for the Dagster instance:

    DAGSTER_HOME if it is set, else ``dagster-home/`` beside the data root
    (``./onyx-data`` -> ``./dagster-home``, what scripts/bootstrap sets up).

So ``onyx run --output ROOT ...`` and
``DAGSTER_HOME=ROOT/../dagster-home ONYX_DATA=ROOT dagster dev -m onyx_dagster.definitions``
(what ``onyx ui ROOT`` runs) look at the same runs, partitions and event log. The
instance is outside the data root, so ``purge``/``purge-all`` can never touch it. When
the CLI creates that folder it copies the repository's dagster.yaml into it.

The code location is ``onyx_dagster.definitions:defs`` unless ``ONYX_DEFINITIONS``
names another ``module:attribute`` (tests use a fast stand-in). Its ``storage``
resource is re-pointed at this data root, so ``--output`` wins over ``ONYX_DATA``.
"""

from __future__ import annotations

import fcntl
import importlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from dagster import AssetKey, DagsterInstance, Definitions
from onyx_tools.layout import BatchLayout

from ..batches import batch_layout, data_root_from_env
from ..settings import OnyxSettings
from .errors import OperationError

DAGSTER_HOME_DIRNAME = "dagster-home"
DEFAULT_DEFINITIONS = "onyx_dagster.definitions:defs"

# The asset graph, in the order a batch flows through it.
BATCH_ASSETS = ("video", "frames", "sparse_model")
RECIPE_ASSETS = ("reconstruction", "masks", "viewer")
ASSET_ORDER = BATCH_ASSETS + RECIPE_ASSETS
# Onyx 1.0's step names (``--from-step``) and the asset each one is (VIEWER is new).
STEPS = {"INGEST": "frames", "SFM": "sparse_model", "RECONSTRUCTION": "reconstruction", "SEGFORMER": "masks",
         "VIEWER": "viewer"}


def resolve_data_root(value: str | os.PathLike | None) -> Path:
    if value is None or str(value) == "":
        return data_root_from_env()
    return Path(os.path.abspath(os.path.expanduser(str(value))))


def dagster_home_for(data_root: Path) -> Path:
    env = os.environ.get("DAGSTER_HOME")
    if env:
        return Path(os.path.abspath(os.path.expanduser(env)))
    return Path(data_root).parent / DAGSTER_HOME_DIRNAME


def _project_dagster_yaml() -> Path | None:
    candidate = Path(__file__).resolve().parents[2] / "dagster.yaml"
    return candidate if candidate.is_file() else None


def open_instance(home: Path) -> DagsterInstance:
    """``DagsterInstance.from_config(home)``, serialised between onyx processes: two processes
    creating a fresh SQLite instance at once would both stamp its schema."""
    from ..pools import ensure_pools

    with open(Path(home) / ".onyx-init.lock", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        instance = DagsterInstance.from_config(str(home))
        ensure_pools(instance)
        return instance


def load_definitions(spec: str | None = None) -> Definitions:
    spec = spec or OnyxSettings.from_env().definitions or DEFAULT_DEFINITIONS
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    defs = getattr(module, attr or "defs")
    if not isinstance(defs, Definitions):
        raise OperationError(f"ONYX_DEFINITIONS={spec!r} is not a dagster Definitions object")
    return defs


@dataclass
class Onyx:
    """One data root with its Dagster instance and code location (all loaded lazily)."""

    data_root: Path
    definitions: Definitions | None = None
    home: Path | None = None
    on_note: Callable[[str], None] | None = field(default=None, repr=False)
    _instance: DagsterInstance | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.data_root = resolve_data_root(self.data_root)
        if self.home is None:
            self.home = dagster_home_for(self.data_root)

    def note(self, text: str) -> None:
        """Something the user should know that refuses nothing (a dead run marked failed, a lock
        taken over); the command line prints it."""
        if self.on_note is not None:
            self.on_note(text)

    # -- the Dagster instance -------------------------------------------------
    @property
    def home_exists(self) -> bool:
        return self.home.is_dir()

    def instance(self, create: bool = True) -> DagsterInstance | None:
        """The persistent instance; ``create=False`` returns None where none exists yet
        (so a refused command writes nothing, not even an empty instance)."""
        if self._instance is not None:
            return self._instance
        if not self.home_exists:
            if not create:
                return None
            self.home.mkdir(parents=True, exist_ok=True)
            project_yaml = _project_dagster_yaml()
            if project_yaml is not None and not (self.home / "dagster.yaml").exists():
                shutil.copyfile(project_yaml, self.home / "dagster.yaml")
        self._instance = open_instance(self.home)
        return self._instance

    def reader_instance(self) -> DagsterInstance | None:
        """The instance if it exists, else an empty ephemeral one (reads only)."""
        return self.instance(create=False) or DagsterInstance.ephemeral()

    def close(self) -> None:
        if self._instance is not None:
            self._instance.dispose()
            self._instance = None

    # -- the code location ------------------------------------------------------
    @cached_property
    def defs(self) -> Definitions:
        from ..resources import BatchStorage

        base = self.definitions if self.definitions is not None else load_definitions()
        resources = dict(base.resources or {})
        resources["storage"] = BatchStorage(data_root=str(self.data_root))
        return Definitions(
            assets=list(base.assets or []),
            asset_checks=list(base.asset_checks or []),
            resources=resources,
        )

    @cached_property
    def asset_graph(self):
        return self.defs.resolve_asset_graph()

    @cached_property
    def asset_names(self) -> tuple[str, ...]:
        """The pipeline assets this code location has, in flow order."""
        present = {key.to_user_string() for key in self.asset_graph.get_all_asset_keys()}
        return tuple(name for name in ASSET_ORDER if name in present)

    def has_asset(self, name: str) -> bool:
        return name in self.asset_names

    @property
    def has_recipe_assets(self) -> bool:
        return any(self.has_asset(name) for name in RECIPE_ASSETS)

    def code_version(self, name: str) -> str | None:
        return self.asset_graph.get(AssetKey(name)).code_version

    def parents(self, name: str) -> list[str]:
        keys = self.asset_graph.get(AssetKey(name)).parent_keys
        return [key.to_user_string() for key in keys if key.to_user_string() in self.asset_names]

    @cached_property
    def job(self):
        return self.defs.resolve_implicit_global_asset_job_def()

    # -- files -------------------------------------------------------------------
    def layout(self, key: str) -> BatchLayout:
        return batch_layout(self.data_root, key)

    def __enter__(self) -> "Onyx":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
