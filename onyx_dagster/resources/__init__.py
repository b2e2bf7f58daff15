from .runners import DockerRunner, LocalRunner, ToolRunner
from .storage import BatchStorage

__all__ = ["BatchStorage", "DockerRunner", "LocalRunner", "ToolRunner"]
