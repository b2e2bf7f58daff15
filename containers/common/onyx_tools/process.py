"""Running an external program (OpenMVS, MILo, ...) with its output streamed into the tool's log.

A missing program and a failing one are different problems with different fixes, so
each gets its own ``ToolError``; a failure carries the last lines of the program's
output, which is where the reason is.
"""

from __future__ import annotations

import collections
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .errors import ToolError

TAIL_LINES = 40


class MissingProgramError(ToolError):
    pass


class ProgramFailedError(ToolError):
    def __init__(self, message: str, returncode: int, tail: list[str]):
        super().__init__(message)
        self.returncode = returncode
        self.tail = tail


def killed_by_memory(returncode: int) -> bool:
    """SIGKILL as a signal (-9) or as a shell/container exit status (137): usually the OOM killer."""
    return returncode in (-9, 137)


def require_program(program: str, hint: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise MissingProgramError(f"{program} was not found on PATH: {hint}")
    return found


def run_program(command: Sequence[str | os.PathLike], *, log: logging.Logger, hint: str,
                cwd: Path | None = None, env: Mapping[str, str] | None = None,
                on_line: Callable[[str], None] | None = None,
                failure_hint: Callable[[int], str] | None = None) -> list[str]:
    """Run ``command``, log each output line, call ``on_line`` with it; return the output tail.

    ``hint`` says how to get the program when it is missing; ``failure_hint(returncode)``
    may add what to change when it fails (e.g. less memory-hungry settings).
    """
    argv = [str(part) for part in command]
    require_program(argv[0], hint)
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    log.info("running %s", " ".join(argv))
    try:
        process = subprocess.Popen(argv, cwd=cwd, env=None if env is None else {**os.environ, **env},
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, errors="replace", bufsize=1)
    except FileNotFoundError as error:  # vanished between which() and exec, or a broken interpreter line
        raise MissingProgramError(f"{argv[0]} could not be started ({error}): {hint}") from None
    assert process.stdout is not None
    with process:
        for raw in process.stdout:
            # progress bars rewrite one line with carriage returns: keep the last state
            line = raw.rstrip("\n").split("\r")[-1].rstrip()
            if not line:
                continue
            tail.append(line)
            log.info("%s: %s", Path(argv[0]).name, line)
            if on_line is not None:
                on_line(line)
        returncode = process.wait()
    if returncode != 0:
        extra = failure_hint(returncode) if failure_hint else ""
        if not extra and killed_by_memory(returncode):
            extra = "it was killed (SIGKILL), most likely out of memory: give it more memory or lighter settings"
        message = f"{Path(argv[0]).name} exited with status {returncode}"
        message += f"; {extra}" if extra else ""
        message += "\n--- last output ---\n" + "\n".join(tail)
        raise ProgramFailedError(message, returncode, list(tail))
    return list(tail)
