"""``python -m onyx_ingest``: the ingest step behind Dagster Pipes."""

from onyx_tools.tool import run_tool

from .tool import main

if __name__ == "__main__":
    run_tool("ingest", main)
