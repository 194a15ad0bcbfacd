"""A poison job with real worker processes (ADR 0015): a task that SIGKILLs its own worker
ends quarantined after 3 crashes while 500 other jobs complete."""

from __future__ import annotations

import time

from tests.acceptance.conftest import Workers
from treadle import JobStatus, Treadle


def test_a_job_that_kills_its_worker_is_quarantined_while_others_complete(
    db_url: str, workers: Workers
) -> None:
    app = Treadle(db_url)
    from tests.acceptance.app import kill_own_worker, steady

    others = app.enqueue([steady.new_job({"i": i}) for i in range(500)])
    poison = app.enqueue([kill_own_worker.new_job({})])[0]
    # One job per worker (concurrency 1, nothing claimed ahead): a killed worker takes down
    # only the job that killed it (see ADR 0015 on jobs in flight beside a poison job, and
    # ADR 0017 on jobs held ahead).
    # A lease long enough that a live worker starved of CPU on a busy machine does not
    # lose it (which would count as a crash): the dead ones are seen at once (ADR 0018).
    args = ("--lease-seconds", "3", "--shutdown-grace", "1", "--prefetch", "0")
    live = [workers.start(*args, concurrency=1) for _ in range(2)]
    deadline = time.monotonic() + 50
    restarts = 0

    def done() -> bool:
        counts = app.store.count_by_status()
        return counts.get("quarantined", 0) == 1 and counts.get("succeeded", 0) == 500

    while not done():
        assert time.monotonic() < deadline, f"not done: {app.store.count_by_status()}"
        # The supervisor's part: a worker that died is replaced.
        for i, p in enumerate(live):
            if p.poll() is not None:
                assert p.returncode == -9  # SIGKILL, by the poison job
                live[i] = workers.start(*args, concurrency=1)
                restarts += 1
        time.sleep(0.05)
    job = app.get_job(poison.id)
    assert job.status is JobStatus.QUARANTINED
    assert len(job.crashes) == 3 and [c.attempt for c in job.crashes] == [1, 2, 3]
    assert len({c.worker for c in job.crashes}) == 3  # three different worker processes
    assert restarts >= 2  # the third victim may still be being replaced
    reasons = [e.reason for e in app.job_events(poison.id)]
    # A crash is seen by the worker's liveness (ADR 0018) or, failing that, its lease.
    crashes = reasons.count("lease_expired") + reasons.count("worker_died")
    assert crashes == 2 and reasons[-1] == "quarantined"
    assert all(app.get_job(h.id).status is JobStatus.SUCCEEDED for h in others)
    workers.stop_all()
    # Quarantined means not run again: still there after the workers are gone.
    assert app.get_job(poison.id).status is JobStatus.QUARANTINED
    app.close()
