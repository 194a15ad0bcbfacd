"""Faster recovery (ADR 0010): a SIGKILLed worker's job runs again within lease + 1 s."""

from __future__ import annotations

import os
import signal
import time

from tests.acceptance.conftest import Workers, wait_until
from treadle import JobStatus, Treadle

LEASE = 2.0


def test_sigkilled_workers_job_runs_again_within_lease_plus_one_second(
    db_url: str, workers: Workers
) -> None:
    app = Treadle(db_url)
    from tests.acceptance.app import slow_first_attempt

    job = app.enqueue([slow_first_attempt.new_job({"seconds": 60})])[0]
    victim = workers.start("--lease-seconds", str(LEASE))
    wait_until(lambda: app.get_job(job.id).status is JobStatus.RUNNING, 30, "job to start")
    rescuer = workers.start("--lease-seconds", str(LEASE))
    time.sleep(3.0)  # the rescuer is up and idle (the job is held by the victim)
    assert rescuer.poll() is None
    killed_at = time.time()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    done = job.wait(timeout=30)
    assert done.status is JobStatus.SUCCEEDED and done.result == "attempt2"
    second = [e for e in app.job_events(job.id) if e.reason == "claimed"][1]
    # The lease ran out at most LEASE after the kill (the last heartbeat came before it).
    assert second.at.timestamp() - killed_at <= LEASE + 1.0
    app.close()


def test_sigkilled_workers_job_runs_again_within_two_seconds_at_default_settings(
    db_url: str, workers: Workers
) -> None:
    """ADR 0018: noticed through the worker's session (PostgreSQL) or its process (SQLite),
    not its lease: the default 30 s lease would take far longer."""
    app = Treadle(db_url)
    from tests.acceptance.app import slow_first_attempt

    job = app.enqueue([slow_first_attempt.new_job({"seconds": 60})])[0]
    victim = workers.start()
    wait_until(lambda: app.get_job(job.id).status is JobStatus.RUNNING, 30, "job to start")
    rescuer = workers.start()
    wait_until(lambda: len(app.store.worker_processes()) == 2, 30, "the rescuer to register")
    assert rescuer.poll() is None
    killed_at = time.time()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    done = job.wait(timeout=30)
    assert done.status is JobStatus.SUCCEEDED and done.result == "attempt2"
    events = app.job_events(job.id)
    assert "worker_died" in [e.reason for e in events]
    second = [e for e in events if e.reason == "claimed"][1]
    assert second.at.timestamp() - killed_at <= 2.0
    app.close()
