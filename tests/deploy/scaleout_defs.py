"""The Onyx code location with the executor chosen by ONYX_EXECUTOR (onyx_dagster/executors.py).

Until onyx_dagster/definitions.py passes ``executor=executor_from_env()`` itself, the scale-out test
loads this module (in its daemon, run processes and Celery workers): the same assets, jobs,
resources and sensors, plus that executor. Once definitions.py has it, this is the same object.
"""

from dagster import Definitions

from onyx_dagster import definitions as _base_module
from onyx_dagster.executors import executor_from_env

_executor = executor_from_env()
if _executor is None or getattr(_base_module.defs, "executor", None) is not None:
    defs = _base_module.defs
else:
    defs = Definitions.merge(_base_module.defs, Definitions(executor=_executor))
