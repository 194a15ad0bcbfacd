"""A worker thread over an app with hostile tasks (write-path and supervision tests)."""

from __future__ import annotations

import threading

from treadle import Treadle
from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.job import Job, JobKind
from treadle.executors import TaskExecutor
from treadle.worker import Worker, WorkerConfig


class Running:
    """A worker thread on ``store`` (defaults to the app's) for the length of a block."""

    def __init__(
        self, app: Treadle, store: object = None, clock: Clock = SYSTEM_CLOCK, **cfg: object
    ) -> None:
        config = WorkerConfig(**{"concurrency": 2, "poll_interval": 0.2, **cfg})  # type: ignore[arg-type]
        self.worker = Worker(store or app.store, {JobKind.TASK: TaskExecutor(app)}, config,  # type: ignore[arg-type]
                             clock=clock)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


def finished(app: Treadle, job_id: int, timeout: float = 20.0) -> Job:
    app.store.wait_for_finish([job_id], timeout)
    job = app.get_job(job_id)
    assert job.is_finished, f"job {job.id} still {job.status.value}"
    return job
