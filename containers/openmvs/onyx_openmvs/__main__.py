"""``python -m onyx_openmvs``: the openmvs tool's entrypoint (Dagster Pipes)."""

from onyx_tools.tool import run_tool

from .tool import main

if __name__ == "__main__":
    run_tool("openmvs", main)
