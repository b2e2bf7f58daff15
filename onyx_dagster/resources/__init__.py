from .docker_runner import DockerRunner
from .runners import LocalRunner, ToolRunner
from .storage import BatchStorage

__all__ = ["BatchStorage", "DockerRunner", "LocalRunner", "ToolRunner"]
