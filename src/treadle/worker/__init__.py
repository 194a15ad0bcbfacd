"""Workers: the pull cycle, heartbeats, the reaper, graceful shutdown."""

from treadle.worker.reaper import Reaper
from treadle.worker.scheduler import Periodic, Scheduler
from treadle.worker.worker import Worker, WorkerConfig

__all__ = ["Periodic", "Reaper", "Scheduler", "Worker", "WorkerConfig"]
