"""Tests of the ingest tool (containers/ingest)."""
