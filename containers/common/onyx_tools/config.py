"""One settings model per tool: the fields, their defaults and their limits exist once.

Each tool declares ``class <Tool>Config(ToolConfig)`` in its ``config.py``. The tool
validates the Pipes extras with it (``from_params``); the orchestrator's asset config
is a Dagster ``Config`` built on the same model, so the launchpad shows the same
fields, defaults and descriptions the tool enforces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from .errors import ToolError

# Extras the runner adds next to a tool's own settings (not settings of any tool).
RUNNER_EXTRAS = frozenset({"inputs"})

# The batch's own choices, as every tool that receives them spells them.
Scene = Literal["indoor", "outdoor"]
Quality = Literal["proto", "production"]
VideoKind = Literal["normal", "360", "auto"]
RecipeName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Device = Literal["auto", "cpu", "cuda"]


def explain(error: ValidationError, what: str, fields: Iterable[str] = ()) -> str:
    """One line per offending field, in words a person can act on."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "settings"
        if item["type"] == "literal_error":
            expected = item.get("ctx", {}).get("expected", "")
            lines.append(f"{field}: got {item.get('input')!r}, expected {expected}")
        elif item["type"] == "missing":
            lines.append(f"{field}: required")
        elif item["type"] == "extra_forbidden":
            known = ", ".join(fields)
            lines.append(f"{field}: not a setting" + (f" (settings: {known})" if known else ""))
        else:
            lines.append(f"{field}: {item['msg']} (got {item.get('input')!r})")
    return f"invalid {what}:\n  " + "\n  ".join(lines)


class ToolConfig(BaseModel):
    """Base of every tool's settings: unknown keys are refused, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Self:
        """The tool's settings from Pipes extras; every bad value is named in one ToolError."""
        values = {key: value for key, value in params.items() if key not in RUNNER_EXTRAS}
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise ToolError(explain(error, f"{cls.__name__} settings", cls.model_fields)) from None
