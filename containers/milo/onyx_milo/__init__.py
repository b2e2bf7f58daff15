"""onyx milo tool."""

__version__ = "1"
