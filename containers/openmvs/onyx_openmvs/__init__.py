"""onyx openmvs tool."""

__version__ = "1"
