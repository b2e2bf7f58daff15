"""``python -m onyx_sfm``: the sfm step over Dagster Pipes."""

from onyx_tools.tool import run_tool

from .tool import main

if __name__ == "__main__":
    run_tool("sfm", main)
