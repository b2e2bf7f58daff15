"""Errors a person can act on.

A ``ToolError`` carries a message that names the problem and the fix; the tool
entrypoint reports it as the step's failure without a traceback wall.
"""


class ToolError(RuntimeError):
    """A failure caused by the input or the environment, with an actionable message."""
