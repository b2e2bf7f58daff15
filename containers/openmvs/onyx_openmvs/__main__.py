from onyx_tools.tool import run_tool

from .main import main

run_tool("openmvs", main)
