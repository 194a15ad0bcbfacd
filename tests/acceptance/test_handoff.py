"""Hand-off to a parked worker (ADR 0034) with real `treadle worker` processes on
PostgreSQL: a killed parked worker is never handed a job, and a stopped one unparks."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.acceptance.conftest import Workers, wait_until
from treadle import JobStatus, Treadle


def _parked(url: str) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT worker FROM treadle_parked").fetchall()]


@pytest.fixture
def pg_workers(pg_url: str, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(pg_url, tmp_path)
    yield w
    w.stop_all()


def test_a_job_enqueued_after_its_parked_worker_was_killed_goes_to_a_live_one(
    pg_url: str, pg_workers: Workers,
) -> None:
    app = Treadle(pg_url)
    try:
        from tests.acceptance.app import steady

        victim = pg_workers.start()
        wait_until(lambda: len(_parked(pg_url)) == 1, 30, "the idle worker to park")
        [victim_id] = _parked(pg_url)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        assert _parked(pg_url) == [victim_id]  # nobody cleared its row: it is still there
        job = app.enqueue([steady.new_job({"i": 7})])[0]  # the dead row: the only one parked
        assert app.get_job(job.id).status is JobStatus.QUEUED  # not handed to the dead
        pg_workers.start()
        started = time.monotonic()
        assert job.wait(timeout=30).result == 7
        # Claimed by the live worker as soon as it came up, not left to a lease.
        assert time.monotonic() - started < 15
        claimed = [e.worker for e in app.job_events(job.id) if e.reason == "claimed"]
        assert len(claimed) == 1 and claimed[0] != victim_id
        assert "worker_died" not in [e.reason for e in app.job_events(job.id)]
        # The live worker's park cleared the dead worker's row.
        wait_until(lambda: victim_id not in _parked(pg_url), 30, "the dead row to go")
    finally:
        app.close()


def test_a_parked_worker_stopped_by_sigterm_leaves_no_parked_row(
    pg_url: str, pg_workers: Workers,
) -> None:
    app = Treadle(pg_url)
    try:
        from tests.acceptance.app import steady

        worker = pg_workers.start()
        wait_until(lambda: len(_parked(pg_url)) == 1, 30, "the idle worker to park")
        handles = []
        for i in range(3):
            handles.append(app.enqueue([steady.new_job({"i": i})])[0])
            time.sleep(0.1)
        assert [h.wait(timeout=30).result for h in handles] == [0, 1, 2]
        handed = 0
        for h in handles:
            events = app.job_events(h.id)
            handed += events[1].reason == "claimed" and events[1].at == events[0].at
        assert handed >= 2  # claimed by their own enqueue (one may race the worker's park)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0
        assert _parked(pg_url) == []
        job = app.enqueue([steady.new_job({"i": 9})])[0]
        assert app.get_job(job.id).status is JobStatus.QUEUED
    finally:
        app.close()
