"""Onyx: walk-through videos to 3D scenes, as a Dagster code location."""

import onyx_tools  # noqa: E402,F401  (binds zlib before any pycolmap import: onyx_tools/native_order.py)
