"""Worker liveness (ADR 0018): a dead worker's jobs are re-queued without waiting for
their leases, on real SQLite and real PostgreSQL, with a real process that dies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from treadle.core.job import NewJob
from treadle.core.lifecycle import JobStatus
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.store import open_store

ROOT = Path(__file__).resolve().parents[2]

# A worker's store calls in a real process that then dies without any cleanup.
_CHILD = textwrap.dedent("""
    import os, sys
    from treadle.store import open_store
    store = open_store(sys.argv[1])
    assert store.register_worker("doomed")
    jobs = store.claim(queues=None, worker="doomed", limit=1, lease_seconds=3600)
    print(jobs[0].id, jobs[0].lease_token, flush=True)
    os._exit(0)  # no unregister, no close: like a crash
""")


def _crash_holding_a_job(db_url: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", _CHILD, db_url], capture_output=True,
                         check=True, timeout=60, cwd=ROOT, text=True)
    job_id, token = out.stdout.split()
    return int(job_id), int(token)


def test_a_dead_workers_jobs_are_requeued_and_its_late_write_is_refused(db_url: str) -> None:
    store = open_store(db_url)
    try:
        first = store.enqueue([NewJob(task="t", max_attempts=3)])[0].job
        assert store.register_worker("alive")
        dead_id, dead_token = _crash_holding_a_job(db_url)
        assert dead_id == first.id
        store.enqueue([NewJob(task="t")])
        held = store.claim(queues=None, worker="alive", limit=1, lease_seconds=3600)
        assert len(held) == 1
        # On PostgreSQL this store's session becomes the liveness leader once the dead
        # one's session is gone; until then a pass is a no-op. Poll until it acts.
        deadline = time.monotonic() + 10
        requeued = 0
        while not requeued and time.monotonic() < deadline:
            requeued = store.reap_dead().requeued
            if not requeued:
                time.sleep(0.05)
        assert requeued == 1
        job = store.get_job(dead_id)
        assert job.status is JobStatus.QUEUED and job.lease_owner is None
        last = store.events(dead_id)[-1]
        assert (last.from_status, last.to_status, last.reason) == (
            JobStatus.RUNNING, JobStatus.QUEUED, "worker_died")
        assert job.error is not None and "doomed died" in job.error.message
        # The live worker's job was looked at in the same pass and left alone.
        assert store.get_job(held[0].id).status is JobStatus.RUNNING
        # Fencing unchanged: a late write with the dead attempt's token is refused.
        late = Outcome(dead_id, dead_token, OutcomeKind.SUCCEEDED, "doomed", result=1)
        assert store.complete([late]) == [False]
        assert store.get_job(dead_id).status is JobStatus.QUEUED
    finally:
        store.unregister_worker("alive")
        store.close()


def test_a_dead_worker_on_its_last_attempt_gives_the_attempt_back(db_url: str) -> None:
    """A crash is not the job's failure (ADR 0024): its attempt is refunded and the job,
    now a suspect, waits for a worker that runs it alone."""
    store = open_store(db_url)
    try:
        store.enqueue([NewJob(task="t", max_attempts=1)])
        assert store.register_worker("alive")
        dead_id, _ = _crash_holding_a_job(db_url)
        deadline = time.monotonic() + 10
        while store.reap_dead().requeued == 0:
            assert time.monotonic() < deadline, "the dead worker's job was not reaped"
            time.sleep(0.05)
        job = store.get_job(dead_id)
        assert job.status is JobStatus.QUEUED and job.max_attempts == 2 and job.attempt == 1
        assert [c.worker for c in job.crashes] == ["doomed"]
        last = store.events(dead_id)[-1]
        assert last.reason == "worker_died" and last.detail is not None
        assert last.detail["attempt_refunded"] is True
        assert store.claim(queues=None, worker="alive", limit=5, lease_seconds=60) == []
        assert store.suspect_waiting(queues=None)
        [again] = store.claim(queues=None, worker="alive", limit=5, lease_seconds=60,
                              suspect=True)
        assert again.id == dead_id and again.attempt == 2
    finally:
        store.unregister_worker("alive")
        store.close()
