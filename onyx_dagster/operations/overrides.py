"""``--set STEP.SETTING=VALUE``: a run's settings over the defaults, named as the launchpad names them.

``STEP`` is the asset (``frames``, ``sparse_model``, ``reconstruction``, ``masks``, ``viewer``)
and ``SETTING`` a field of its config, which is built on the tool's own settings model
(``onyx_<tool>.config``); for ``reconstruction`` it is a setting of the recipe's tool, checked
by that tool's ``CONFIG`` over the recipe's preset. Nested fields take dots
(``masks.filter.max_views=20``); a value is JSON where it starts with ``[`` or ``{``, else the
model converts the text (``0.2``, ``true``, ``exhaustive``). Everything is checked before
anything runs; a message that advises a setting names it in this form.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from onyx_tools.config import explain
from onyx_tools.errors import ToolError
from pydantic import ValidationError

from .context import ASSET_ORDER
from .errors import OperationError

_SETTING = re.compile(r"^([a-z_]+)\.([a-z_][a-z0-9_.]*)=(.*)$", re.DOTALL)


def asset_configs() -> dict[str, type]:
    """Each asset's config class (imported on demand: the tools' settings models)."""
    from ..defs.ingest import FramesConfig
    from ..defs.masks import MasksConfig
    from ..defs.sfm import SparseModelConfig
    from ..defs.viewer import ViewerAssetConfig

    return {"frames": FramesConfig, "sparse_model": SparseModelConfig, "masks": MasksConfig,
            "viewer": ViewerAssetConfig}


@dataclass
class Overrides:
    """Validated settings per asset, as Dagster run config takes them."""

    by_asset: dict[str, dict[str, Any]] = field(default_factory=dict)
    given: dict[str, list[str]] = field(default_factory=dict)  # asset -> the --set texts, for the plan

    def __bool__(self) -> bool:
        return bool(self.by_asset)

    def first_asset(self) -> str | None:
        return next((name for name in ASSET_ORDER if name in self.by_asset), None)

    def op_config(self, assets: Iterable[str]) -> dict:
        """``{"ops": {asset: {"config": ...}}}`` for the assets of one run."""
        ops = {}
        for name in assets:
            if name in self.by_asset:
                values = self.by_asset[name]
                ops[name] = {"config": {"settings": values} if name == "reconstruction" else values}
        return {"ops": ops} if ops else {}


def _value(text: str) -> Any:
    if text[:1] in ("[", "{"):
        try:
            return json.loads(text)
        except ValueError as error:
            raise OperationError(f"--set value {text!r} is not valid JSON ({error})") from None
    return text


def _nest(target: dict, dotted: str, value: Any, item: str) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            raise OperationError(f"--set {item}: {part} is set twice, as a value and as a group")
        target = child
    target[last] = value


def parse(items: Iterable[str], *, recipes: Iterable[str] = (), scene: str = "outdoor",
          steps: Iterable[str] = ASSET_ORDER) -> Overrides:
    """The ``--set`` items, each checked by its step's settings model; OperationError names every bad one."""
    raw: dict[str, dict] = {}
    given: dict[str, list[str]] = {}
    problems = []
    steps = [name for name in steps if name != "video"]
    for item in items:
        match = _SETTING.match(item)
        if not match:
            problems.append(f"{item!r}: expected STEP.SETTING=VALUE with STEP one of {', '.join(steps)} "
                            "(e.g. sparse_model.matching=exhaustive)")
            continue
        step, dotted, text = match.groups()
        if step not in steps:
            problems.append(f"{item!r}: {step!r} is not a step here; steps: {', '.join(steps)}")
            continue
        try:
            _nest(raw.setdefault(step, {}), dotted, _value(text), item)
        except OperationError as error:
            problems.append(str(error))
            continue
        given.setdefault(step, []).append(item)
    configs = asset_configs()
    by_asset: dict[str, dict] = {}
    for step, values in raw.items():
        if step == "reconstruction":
            checked = _check_recipe_settings(values, list(recipes), scene, problems)
            if checked is not None:
                by_asset[step] = checked
            continue
        model = configs[step]
        unknown = [name for name in values if name not in model.model_fields]
        if unknown:
            problems += [f"{step}.{name}: not a setting of {step} (its settings: {', '.join(model.model_fields)})"
                         for name in unknown]
            continue
        try:
            by_asset[step] = model.model_validate(values).model_dump(mode="json", exclude_unset=True)
        except ValidationError as error:
            problems += _prefixed(explain(error, step, model.model_fields), step)
    if problems:
        raise OperationError("invalid --set:\n  " + "\n  ".join(problems))
    return Overrides(by_asset, given)


def _prefixed(explained: str, step: str) -> list[str]:
    """``explain``'s lines (after its heading), each field named as --set names it."""
    return [f"{step}.{line.strip()}" for line in explained.splitlines()[1:] if line.strip()]


# The batch's own choices (batch.json), which the recipe's tool is given by the asset, not by a run.
BATCH_CHOICES = ("recipe", "scene")


def _check_recipe_settings(values: Mapping[str, Any], recipes: list[str], scene: str,
                           problems: list[str]) -> dict | None:
    from ..recipes import get_recipe

    if not recipes:
        problems.append("reconstruction.*: this plan reconstructs nothing")
        return None
    fixed = [name for name in values if name in BATCH_CHOICES]
    if fixed:
        problems += [f"reconstruction.{name}: the batch's own choice (batch.json), not a setting of a run; "
                     "`onyx fork` runs another recipe" for name in fixed]
        return None
    checked: dict[str, Any] = {}
    for name in recipes:
        recipe = get_recipe(name)
        config = importlib.import_module(f"onyx_{recipe.tool}.config").CONFIG
        given = dict(values)
        if not hasattr(config, "model_validate"):  # a tool whose settings are not a pydantic model yet
            known = getattr(config, "__dataclass_fields__", {})
            unknown = [key for key in given if key not in known]
            if unknown:
                problems += [f"reconstruction.{key}: not a setting (settings: {', '.join(known)}) (recipe {name}, "
                             f"tool {recipe.tool})" for key in unknown]
                return None
            given = {key: _scalar(value) for key, value in given.items()}
        try:
            validated = recipe.validate(recipe.tool_settings(scene, given))
        except (ToolError, TypeError, ValueError) as error:
            text = str(error)
            lines = _prefixed(text, "reconstruction") if "\n" in text else [f"reconstruction: {text}"]
            problems += [f"{line} (recipe {name}, tool {recipe.tool})" for line in lines]
            return None
        # The tool's model converted the text ("3000" -> 3000); the run is given its values.
        dumped = validated.model_dump(mode="json") if hasattr(validated, "model_dump") else given
        checked.update({key: dumped.get(key, value) for key, value in given.items()})
    return checked


def _scalar(value: Any) -> Any:
    """Text as the JSON scalar it spells (``3200``, ``true``), else the text."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        return parsed if isinstance(parsed, (int, float, bool)) or parsed is None else value
    return value
