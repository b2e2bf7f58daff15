"""onyx segformer tool."""

__version__ = "1"
