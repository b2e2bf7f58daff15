"""onyx gsplat tool."""

__version__ = "1"
