"""onyx ingest tool."""

__version__ = "1"
