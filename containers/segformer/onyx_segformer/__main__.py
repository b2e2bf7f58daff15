"""``python -m onyx_segformer``: the segformer step as a Dagster Pipes process."""

from onyx_tools.tool import run_tool

from .tool import main

if __name__ == "__main__":
    run_tool("segformer", main)
