"""Dynamic workers end to end: a real store (SQLite and PostgreSQL), real Worker threads,
real sandboxes (bubblewrap, V8)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.sandbox import require_bwrap
from treadle import Treadle
from treadle.core.job import Job, JobKind
from treadle.dynamic import WorkerRegistry, enable
from treadle.executors import TaskExecutor
from treadle.sandbox import SandboxManager
from treadle.worker import Worker, WorkerConfig

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def sandboxes() -> Iterator[SandboxManager]:
    """One manager for the session: sandbox start-up is paid once, not per test."""
    require_bwrap()
    mgr = SandboxManager(python_pool_size=2, js_hosts=1, get_cache_capacity=32)
    mgr.warm_up()
    yield mgr
    mgr.close()


@dataclass
class Dyn:
    app: Treadle
    workers: WorkerRegistry
    worker: Worker
    tenant: str  # unique per test: warm `get` instances of the shared manager never leak

    def finished(self, handle_id: int, timeout: float = 20.0) -> Job:
        self.app.store.wait_for_finish([handle_id], timeout)
        job = self.app.get_job(handle_id)
        assert job.is_finished, f"job {job.id} still {job.status.value}"
        return job


def start_worker(app: Treadle) -> tuple[Worker, threading.Thread]:
    # poll_interval is only the safety net for missed wake-ups; keep the tests snappy.
    worker = Worker(
        app.store,
        {JobKind.TASK: TaskExecutor(app), **app.extra_executors},  # type: ignore[attr-defined]
        WorkerConfig(concurrency=2, poll_interval=0.2, shutdown_grace=5.0),
    )
    thread = threading.Thread(target=worker.run, name="test-worker", daemon=True)
    thread.start()
    return worker, thread


def stop_worker(worker: Worker, thread: threading.Thread) -> None:
    worker.stop()
    thread.join(timeout=15)
    assert not thread.is_alive(), "worker did not stop"  # run() joins its own threads


@pytest.fixture
def dyn(db_url: str, sandboxes: SandboxManager) -> Iterator[Dyn]:
    app = Treadle(db_url)
    workers = enable(app, sandboxes)
    worker, thread = start_worker(app)
    try:
        yield Dyn(app, workers, worker, f"t-{uuid.uuid4().hex[:8]}")
    finally:
        stop_worker(worker, thread)
        workers.close()
        app.close()
