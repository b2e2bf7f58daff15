"""onyx viewer tool: a web page, web formats and a fly-through video of a reconstruction."""

__version__ = "1"
