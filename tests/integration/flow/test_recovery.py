"""Faster recovery (ADR 0010): a dead worker's jobs run again within lease TTL + 1 s,
and retention runs in the maintenance loop."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from treadle import Treadle
from treadle.core.lease import LeaseConfig
from treadle.store import JobFilter
from treadle.testing import ManualClock
from treadle.worker import Worker, WorkerConfig
from treadle.worker.pruner import Pruner


def test_dead_workers_jobs_run_again_within_lease_plus_one_second(db_url: str) -> None:
    app = Treadle(db_url)
    ran = threading.Event()

    @app.task(name="work")
    def work() -> None:
        ran.set()

    lease = 1.0
    [h] = [app.tasks["work"].defer()]
    # The "dead" worker: claims under a lease and never heartbeats or finishes.
    [job] = app.store.claim(queues=None, worker="dead", limit=1, lease_seconds=lease)
    claimed_at = time.monotonic()
    # A live worker whose fixed reap tick alone (5 s) would be far too late.
    w = Worker(app.store, app.executors(),
               WorkerConfig(lease=LeaseConfig(seconds=5.0), reap_interval=5.0))
    t = threading.Thread(target=w.run, daemon=True)
    t.start()
    try:
        assert ran.wait(lease + 3.0)
        assert time.monotonic() - claimed_at <= lease + 1.0
        assert h.wait(5).status.value == "succeeded"
    finally:
        w.stop()
        t.join(10)
    assert job.lease_owner == "dead"
    app.close()


def test_pruner_deletes_old_finished_jobs_in_batches(db_url: str) -> None:
    clock = ManualClock(datetime(2026, 3, 1, tzinfo=UTC))
    app = Treadle(db_url, clock=clock)

    @app.task(name="t")
    def t() -> None:
        return None

    for h in app.tasks["t"].defer_many([{}] * 7):
        app.cancel(h.id)
    app.store.set_retention("short", 3600)
    fresh = app.tasks["t"].defer()
    clock.advance(timedelta(days=8).total_seconds())
    assert Pruner(app.store, batch=2).run_once() == 7
    assert [j.id for j in app.list_jobs(JobFilter())] == [fresh.id]
    assert Pruner(app.store).run_once() == 0
    app.close()
