"""Errors of the batch operations, and the exit codes the ``onyx`` command gives them."""

from __future__ import annotations


class OperationError(Exception):
    """A refusal at the boundary: bad input or a state that forbids the verb.

    The message names the problem and the fix; nothing has been written. Exit code 2.
    """

    exit_code = 2


class BatchBusy(OperationError):
    """A run of the batch is in progress, or another onyx process holds the batch."""


class RunFailed(Exception):
    """A step failed during execution (the run is recorded as failed in Dagster). Exit code 1."""

    exit_code = 1
