"""The Onyx code location: ``dagster dev -m onyx_dagster.definitions`` (or -w workspace.yaml).

What runs where is chosen by the settings (``ONYX_*``, see ``settings.py``), read once here.
"""

from dagster import Definitions

from .defs.dead_runs import dead_onyx_runs
from .defs.drop_folder import drop_folder_sensor
from .defs.ingest import frames, video
from .defs.masks import masks
from .defs.reconstruction import recipe_job, reconstruction
from .defs.sfm import batch_job, sparse_model
from .defs.viewer import viewer
from .dagster_internals import cap_pool_claim_backoff
from .executors import executor_from_settings
from .resources import resources_from_settings
from .settings import OnyxSettings

settings = OnyxSettings.from_env()
# A step waiting for a pool slot (a batch's SfM behind another's) starts within 2 s of the slot
# freeing, not Dagster's up to 15 s: runs execute in processes that load this module.
cap_pool_claim_backoff(2.0)

defs = Definitions(
    assets=[video, frames, sparse_model, reconstruction, masks, viewer],
    jobs=[batch_job, recipe_job],
    sensors=[drop_folder_sensor, dead_onyx_runs],
    executor=executor_from_settings(settings),
    resources=resources_from_settings(settings),
)
