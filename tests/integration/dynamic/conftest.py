"""Dynamic workers end to end: a real store (SQLite and PostgreSQL), real Worker threads,
real sandboxes (bubblewrap, V8)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.sandbox import require_bwrap
from treadle import Treadle
from treadle.core.job import Job
from treadle.dynamic import DynamicWorkers, WorkerRegistry
from treadle.sandbox import SandboxManager
from treadle.testing import run_worker
from treadle.worker import Worker

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


@pytest.fixture
def dyn(db_url: str, sandboxes: SandboxManager) -> Iterator[Dyn]:
    app = Treadle(db_url)
    workers = app.use(DynamicWorkers(sandboxes)).registry
    try:
        # poll_interval is only the safety net for missed wake-ups; keep the tests snappy.
        with run_worker(app, concurrency=2, poll_interval=0.2) as worker:
            yield Dyn(app, workers, worker, f"t-{uuid.uuid4().hex[:8]}")
    finally:
        app.close()
