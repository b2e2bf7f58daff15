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
from onyx_segformer.config import WEIGHTS_ENV
from onyx_tools.tool import UNEXPECTED, disk_full_reason, last_failure
from pydantic import Field

from ..dagster_internals import DagsterPipesExecutionError
from ..install.weights import segformer_folder


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
        self.preflight(context, Path(batch_dir))
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

    def preflight(self, context: AssetExecutionContext, batch_dir: Path) -> None:
        """Before a tool starts: what this step and every later step of the run need
        (``onyx_dagster.preflight``), so a launched backfill whose masks cannot run fails at its
        first tool step, not after the reconstruction. Fails the step without retries."""
        from ..preflight import check_run, describe, run_shape_for_step

        shape = run_shape_for_step(context, Path(batch_dir))
        problems = check_run(shape, runner=self)
        if problems:
            raise Failure(description=describe(problems, f"run {context.run_id[:8]}"), allow_retries=False)

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
    weights: str | None = Field(
        None, description="the weights cache (ONYX_WEIGHTS): SegFormer's folder in it is the masks step's "
                          "default when ONYX_SEGFORMER_WEIGHTS is not set")

    def launch(self, context, *, tool, batch_dir, params, inputs, gpu):
        extras = {
            **params,
            "batch_dir": str(batch_dir),
            "inputs": {name: str(path) for name, path in inputs.items()},
        }
        env = {"ONYX_PARENT_PID": str(os.getpid())}  # the tool dies with this process
        if self.cuda_visible_devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.cuda_visible_devices
        if self.weights and tool == "segformer" and not os.environ.get(WEIGHTS_ENV):
            env[WEIGHTS_ENV] = str(segformer_folder(Path(self.weights)))
        client = PipesSubprocessClient(env={**os.environ, **env})
        return client.run(
            context=context,
            command=[self.python, "-m", f"onyx_{tool}"],
            extras=extras,
        )

