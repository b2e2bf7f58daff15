"""The drop folder people copy videos into (``ONYX_DROP``)."""

from __future__ import annotations

from dagster import ConfigurableResource
from pydantic import Field


class DropFolder(ConfigurableResource):
    """Where people drop videos; the ``drop_folder`` sensor turns each into a batch."""

    folder: str = Field(description="absolute path of the drop folder")
