"""Training progress from MILo's output: ``Step: N/M`` lines (and tqdm's ``N/M [`` as a fallback)."""

from __future__ import annotations

import re

_STEP = re.compile(r"Step:\s*(\d+)\s*/\s*(\d+)")
_TQDM = re.compile(r"\|\s*(\d+)\s*/\s*(\d+)\s*\[")


def parse_step(line: str) -> tuple[int, int] | None:
    """(done, total) from one output line, or None when it says nothing about progress."""
    match = _STEP.search(line) or _TQDM.search(line)
    if not match:
        return None
    done, total = int(match.group(1)), int(match.group(2))
    return (done, total) if 0 <= done <= total and total > 0 else None


def last_step(text: str) -> tuple[int, int] | None:
    """The latest progress in a captured log (progress bars rewrite lines with carriage returns)."""
    found = None
    for line in re.split(r"[\r\n]", text):
        found = parse_step(line) or found
    return found
