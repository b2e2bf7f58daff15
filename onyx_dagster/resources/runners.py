"""Runners: where a tool runs. One contract, chosen by configuration.

Every tool is ``python -m onyx_<tool>`` speaking Dagster Pipes, with the batch folder
at ``extras["batch_dir"]`` and any input files at ``extras["inputs"][name]``. The
runner maps host paths to what the tool sees: the same path for ``local``, ``/data``
and ``/inputs/...`` bind mounts for ``docker``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    ConfigurableResource,
    Failure,
    PipesClientCompletedInvocation,
    PipesSubprocessClient,
)
from dagster._core.errors import DagsterPipesExecutionError
from pydantic import Field

from onyx_tools.tool import UNEXPECTED, disk_full_reason, last_failure


class ToolRunner(ConfigurableResource):
    """Runs one step's tool for one batch and returns what it reported through Pipes.

    Subclasses implement ``launch``; ``run`` turns a failed tool into a ``Failure``
    whose description is the tool's own one-line reason, so the UI shows "ingest
    failed: input ... is not a readable video" rather than an exit code.
    """

    def run(
        self,
        context: AssetExecutionContext,
        *,
        tool: str,
        batch_dir: Path,
        params: Mapping[str, Any],
        inputs: Mapping[str, Path] | None = None,
        gpu: bool = False,
    ) -> PipesClientCompletedInvocation:
        try:
            return self.launch(context, tool=tool, batch_dir=Path(batch_dir), params=params,
                               inputs=inputs or {}, gpu=gpu)
        except DagsterPipesExecutionError as error:
            disk_full = disk_full_reason(Path(batch_dir))
            told = last_failure(Path(batch_dir), tool)
            # Bad input and a full disk come back the same on a retry; a crash may not.
            retry = disk_full is None and (told is None or told.startswith(UNEXPECTED))
            raise Failure(description=f"{tool} failed: {disk_full or told or error}",
                          metadata={"log_path": str(Path(batch_dir) / "logs" / f"{tool}.log")},
                          allow_retries=retry) from error

    def launch(
        self,
        context: AssetExecutionContext,
        *,
        tool: str,
        batch_dir: Path,
        params: Mapping[str, Any],
        inputs: Mapping[str, Path],
        gpu: bool,
    ) -> PipesClientCompletedInvocation:
        raise NotImplementedError


class LocalRunner(ToolRunner):
    """The embedded default: the tool as a subprocess of this Python (no Docker, no GPU needed)."""

    python: str = Field(default_factory=lambda: sys.executable, description="interpreter that has the tools")
    cuda_visible_devices: str | None = Field(
        None, description="CUDA_VISIBLE_DEVICES for GPU steps; '' hides GPUs, None inherits")

    def launch(self, context, *, tool, batch_dir, params, inputs, gpu):
        extras = {
            **params,
            "batch_dir": str(batch_dir),
            "inputs": {name: str(path) for name, path in inputs.items()},
        }
        env = {"ONYX_PARENT_PID": str(os.getpid())}  # the tool dies with this process
        if self.cuda_visible_devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.cuda_visible_devices
        client = PipesSubprocessClient(env={**os.environ, **env})
        return client.run(
            context=context,
            command=[self.python, "-m", f"onyx_{tool}"],
            extras=extras,
        )

