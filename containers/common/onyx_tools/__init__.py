"""Onyx tool library: what every step's container shares.

Depends on dagster-pipes and plain libraries, never on dagster: the same code runs
as a local subprocess and inside the tool images.
"""

# Before anything can import pycolmap: see native_order.py (a heap corruption otherwise).
from . import native_order  # noqa: E402,F401
