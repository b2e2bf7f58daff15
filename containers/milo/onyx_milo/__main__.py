"""``python -m onyx_milo``: the milo step behind Dagster Pipes."""

from onyx_tools.tool import run_tool

from .tool import main

if __name__ == "__main__":
    run_tool("milo", main)
