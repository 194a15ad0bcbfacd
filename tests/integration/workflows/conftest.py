"""Workflows against real databases, with an in-process worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from treadle import Treadle
from treadle.cli.run import executors_for
from treadle.core.job import JobKind
from treadle.worker import Worker, WorkerConfig


@pytest.fixture
def app(db_url: str) -> Iterator[Treadle]:
    a = Treadle(db_url)
    yield a
    a.close()


class Running:
    """A worker thread serving ``app`` (tasks and workflows, with the waker)."""

    def __init__(self, app: Treadle, **cfg: object) -> None:
        config = WorkerConfig(**{"concurrency": 4, "poll_interval": 0.2, **cfg})  # type: ignore[arg-type]
        executors = executors_for(app)
        assert JobKind.WORKFLOW in executors
        self.worker = Worker(app.store, executors, config,
                             on_finished=[app.workflows.waker.on_finished],
                             services=[app.workflows.waker])
        self.thread = threading.Thread(target=self.worker.run, daemon=True)

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()
