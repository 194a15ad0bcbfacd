"""A poison job with real worker processes (ADR 0015, ADR 0024): a task that SIGKILLs its
own worker ends quarantined after 3 crashes while 500 other jobs complete, at the worker's
default concurrency and claim-ahead; jobs held by a killed worker keep their attempts."""

from __future__ import annotations

import signal
import time

from tests.acceptance.conftest import Workers, wait_until
from treadle import JobStatus, Treadle
from treadle.store import JobFilter


def test_a_job_that_kills_its_worker_is_quarantined_while_others_complete(
    db_url: str, workers: Workers
) -> None:
    app = Treadle(db_url)
    from tests.acceptance.app import kill_own_worker, steady

    others = app.enqueue([steady.new_job({"i": i}) for i in range(250)])
    poison = app.enqueue([kill_own_worker.new_job({})])[0]
    others += app.enqueue([steady.new_job({"i": i}) for i in range(250, 500)])
    # Defaults: concurrency 10 and claim-ahead, so the poison job is claimed in a batch
    # with others and the first crash takes its neighbours down too. They come back as
    # suspects, each run alone (ADR 0024): only the poison job crashes again.
    # A lease long enough that a live worker starved of CPU on a busy machine does not
    # lose it (which would count as a crash): the dead ones are seen at once (ADR 0018).
    args = ("--lease-seconds", "3", "--shutdown-grace", "1")
    live = [workers.start(*args, concurrency=None) for _ in range(2)]
    deadline = time.monotonic() + 90
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
                live[i] = workers.start(*args, concurrency=None)
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
    done_jobs = [app.get_job(h.id) for h in others]
    assert all(j.status is JobStatus.SUCCEEDED for j in done_jobs)
    # The neighbours were charged the first crash only (and kept their attempts): once
    # suspects, they ran alone, away from the poison job.
    neighbours = [j for j in done_jobs if j.crashes]
    assert neighbours, "the poison job's first batch should have held other jobs"
    base = next(j.max_attempts for j in done_jobs if not j.crashes)
    assert all(len(j.crashes) == 1 and j.attempt == 2 and j.max_attempts == base + 1
               for j in neighbours), [(j.crashes, j.attempt, j.max_attempts) for j in neighbours]
    assert not app.list_jobs(JobFilter(statuses=(JobStatus.QUARANTINED,), task="steady"))
    workers.stop_all()
    # Quarantined means not run again: still there after the workers are gone.
    assert app.get_job(poison.id).status is JobStatus.QUARANTINED
    app.close()


def test_jobs_held_by_a_killed_worker_keep_their_attempts(
    db_url: str, workers: Workers
) -> None:
    """``retries=0`` jobs, two running and two claimed ahead, when their worker is
    SIGKILLed: none fails; each runs again (attempt 2), alone, and succeeds."""
    app = Treadle(db_url)
    from tests.acceptance.app import hang_first_attempt_no_retry as hang

    held = app.enqueue([hang.new_job({"seconds": 120}) for _ in range(4)])
    # Concurrency 2 with the default claim-ahead (at least 2): all four held, two begun.
    victim = workers.start("--lease-seconds", "3", concurrency=2)

    def all_held() -> bool:
        jobs = [app.get_job(h.id) for h in held]
        return all(j.status is JobStatus.RUNNING and j.lease_owner for j in jobs) and \
            len({j.lease_owner for j in jobs}) == 1

    wait_until(all_held, 30, "the worker to hold all four jobs")
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(10) == -9
    workers.start("--lease-seconds", "3", concurrency=None)

    def all_done() -> bool:
        return all(app.get_job(h.id).is_finished for h in held)

    wait_until(all_done, 60, "the held jobs to run again")
    for h in held:
        job = app.get_job(h.id)
        assert job.status is JobStatus.SUCCEEDED, (job.status, job.error)
        assert job.result == "attempt2" and job.attempt == 2 and len(job.crashes) == 1
        reasons = [e.reason for e in app.job_events(h.id)]
        assert reasons.count("worker_died") + reasons.count("lease_expired") == 1
    app.close()
