"""Where batch folders live."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource, Failure
from onyx_tools.layout import BatchLayout
from pydantic import Field

from ..batches import BatchError, BatchSettings, batch_layout, read_settings


class BatchStorage(ConfigurableResource):
    """The data root holding one folder per batch (``ONYX_DATA``, default ``./onyx-data``)."""

    data_root: str = Field(description="absolute path of the data root")

    @property
    def root(self) -> Path:
        return Path(self.data_root)

    def layout(self, batch_key: str) -> BatchLayout:
        return batch_layout(self.root, batch_key)

    def settings(self, batch_key: str) -> BatchSettings:
        """The batch's settings; a missing or invalid batch.json fails the step without retries."""
        try:
            return read_settings(self.layout(batch_key))
        except BatchError as error:
            raise Failure(description=str(error), allow_retries=False) from None
