"""Executors turn a claimed job into something runnable, one per kind of work."""

from treadle.executors.base import Executor, Runnable
from treadle.executors.task import TaskExecutor

__all__ = ["Executor", "Runnable", "TaskExecutor"]
