"""Onyx: walk-through videos to 3D scenes, as a Dagster code location."""
