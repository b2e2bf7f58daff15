"""Onyx tool library: what every step's container shares.

Depends on dagster-pipes and plain libraries, never on dagster: the same code runs
as a local subprocess and inside the tool images.
"""
