"""onyx sfm tool."""

__version__ = "1"
