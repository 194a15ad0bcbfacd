"""Isolation after a crash (ADR 0024), on both stores: a job whose worker died under it is
a suspect; normal claims leave it out, a claim for suspects takes exactly one, and a
worker runs a suspect alone, holding nothing else until its outcome is stored."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.acceptance.conftest import wait_until
from treadle import JobContext, JobStatus, Treadle
from treadle.core.job import Job, NewJob
from treadle.observe import Observer
from treadle.store import JobFilter
from treadle.testing import ManualClock, run_worker

LEASE = 5.0


def _crash_all(app: Treadle, clock: ManualClock | None, worker: str, n: int) -> list[int]:
    """A worker claims ``n`` jobs in one batch and dies (no heartbeat ever): all crash."""
    jobs = app.store.claim(queues=None, worker=worker, limit=n, lease_seconds=LEASE)
    assert len(jobs) == n
    if clock is not None:
        clock.advance(LEASE + 0.5)
        assert app.store.reap().total == n
    return [j.id for j in jobs]


@pytest.fixture
def clocked(db_url: str) -> Iterator[tuple[Treadle, ManualClock]]:
    clock = ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    app = Treadle(db_url, clock=clock)
    yield app, clock
    app.close()


def test_normal_claims_leave_suspects_out_and_a_suspect_claim_takes_one(
    clocked: tuple[Treadle, ManualClock],
) -> None:
    app, clock = clocked
    store = app.store
    assert not store.suspect_waiting(queues=None)
    first = store.enqueue([NewJob(task="t", max_attempts=1) for _ in range(3)])
    suspects = _crash_all(app, clock, "dead", 3)
    assert sorted(suspects) == sorted(e.job.id for e in first)
    for job_id in suspects:  # retries=0, yet the crash left it an attempt
        job = store.get_job(job_id)
        assert job.status is JobStatus.QUEUED and job.attempts_left == 1
        assert len(job.crashes) == 1
    fresh = store.enqueue([NewJob(task="t") for _ in range(2)])
    assert store.suspect_waiting(queues=None) and store.suspect_waiting(queues=["default"])
    assert not store.suspect_waiting(queues=["elsewhere"])
    assert not store.suspect_waiting(queues=None, kinds=["workflow"])
    batch = store.claim(queues=None, worker="w", limit=10, lease_seconds=LEASE)
    assert sorted(j.id for j in batch) == sorted(e.job.id for e in fresh)
    assert store.claim(queues=["default"], worker="w", limit=10, lease_seconds=LEASE) == []
    # A suspect claim takes exactly one, whatever the limit, queue by queue too.
    one = store.claim(queues=None, worker="w2", limit=10, lease_seconds=LEASE, suspect=True)
    two = store.claim(queues=["default"], worker="w3", limit=10, lease_seconds=LEASE,
                      suspect=True)
    assert len(one) == 1 and len(two) == 1 and one[0].id != two[0].id
    assert {one[0].id, two[0].id} <= set(suspects) and one[0].attempt == 2
    # Fencing unchanged: the dead attempt's token cannot write over the new attempt.
    assert store.get_job(one[0].id).lease_token == one[0].lease_token


def test_a_suspect_claim_respects_a_paused_queue(clocked: tuple[Treadle, ManualClock]) -> None:
    app, clock = clocked
    app.store.enqueue([NewJob(task="t", queue="q")])
    [suspect] = _crash_all(app, clock, "dead", 1)
    app.store.set_queue("q", paused=True)
    assert app.store.claim(queues=None, worker="w", limit=5, lease_seconds=LEASE,
                           suspect=True) == []
    app.store.set_queue("q", paused=False)
    [job] = app.store.claim(queues=["q"], worker="w", limit=5, lease_seconds=LEASE,
                            suspect=True)
    assert job.id == suspect


def test_released_from_quarantine_a_job_is_no_longer_a_suspect(
    clocked: tuple[Treadle, ManualClock],
) -> None:
    app, clock = clocked
    app.store.enqueue([NewJob(task="t", max_crashes=1)])
    [job_id] = _crash_all(app, clock, "dead", 1)
    assert app.store.get_job(job_id).status is JobStatus.QUARANTINED
    assert not app.store.suspect_waiting(queues=None)
    released = app.release(job_id)
    assert released.crashes == () and released.attempts_left >= 1
    [again] = app.store.claim(queues=None, worker="w", limit=5, lease_seconds=LEASE)
    assert again.id == job_id


class _Claims(Observer):
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self._lock = threading.Lock()

    def claimed(self, worker: str, jobs: list[Job], seconds: float) -> None:
        with self._lock:
            if jobs:
                self.batches.append([j.id for j in jobs])


def test_a_worker_runs_each_suspect_alone_and_others_in_batches(db_url: str) -> None:
    app = Treadle(db_url)
    seen: dict[int, list[int]] = {}
    claims = _Claims()
    app.observer = claims

    @app.task(name="watched", retries=0, pass_context=True)
    def watched(i: int, ctx: JobContext) -> int:
        # While a suspect runs, its worker holds no other job in the store: nothing
        # running beside it, nothing claimed ahead, no outcome left unwritten.
        held = app.list_jobs(JobFilter(statuses=(JobStatus.RUNNING,), limit=1000))
        seen[ctx.job.id] = [j.id for j in held if j.lease_owner == ctx.worker]
        return i

    @app.task(name="plain")
    def plain(i: int) -> int:
        return i

    try:
        suspects = [h.id for h in watched.defer_many({"i": i} for i in range(3))]
        jobs = app.store.claim(queues=None, worker="ghost", limit=3, lease_seconds=0.2)
        assert sorted(j.id for j in jobs) == sorted(suspects)
        wait_until(lambda: app.store.reap().requeued > 0
                   or all(app.get_job(s).crashes for s in suspects), 20, "the crash reaped")
        assert all(len(app.get_job(s).crashes) == 1 for s in suspects)
        others = [h.id for h in plain.defer_many({"i": i} for i in range(40))]
        with run_worker(app, concurrency=4):
            wait_until(lambda: all(app.get_job(j).is_finished for j in suspects + others),
                       60, "everything to finish")
        for s in suspects:
            job = app.get_job(s)
            assert job.status is JobStatus.SUCCEEDED and job.attempt == 2
            assert seen[s] == [s], seen
        for batch in claims.batches:
            if set(batch) & set(suspects):
                assert len(batch) == 1, claims.batches
        assert any(len(b) > 1 for b in claims.batches)  # the others did come in batches
        assert all(app.get_job(o).status is JobStatus.SUCCEEDED for o in others)
    finally:
        app.close()


def test_work_that_arrives_while_a_suspect_runs_goes_to_another_worker(db_url: str) -> None:
    """Jobs enqueued while a suspect runs are claimable (the other worker runs them), yet
    the suspect's worker claims none of them before the suspect's attempt is over."""
    app = Treadle(db_url)
    during: list[int] = []

    @app.task(name="plain")
    def plain(i: int) -> int:
        return i

    @app.task(name="probe", pass_context=True)
    def probe(ctx: JobContext) -> str:
        handles = plain.defer_many({"i": i} for i in range(8))
        during.extend(h.id for h in handles)
        for h in handles:  # run elsewhere: this worker takes nothing while it runs this
            assert h.wait(30).status is JobStatus.SUCCEEDED
        return ctx.worker

    try:
        [suspect] = [h.id for h in probe.defer_many([{}])]
        app.store.claim(queues=None, worker="ghost", limit=1, lease_seconds=0.2)
        wait_until(lambda: app.store.reap().total > 0 or bool(app.get_job(suspect).crashes),
                   20, "the crash reaped")
        with run_worker(app, concurrency=4), run_worker(app, concurrency=4):
            wait_until(lambda: app.get_job(suspect).is_finished, 60, "the suspect to finish")
            done = app.get_job(suspect)
        assert done.status is JobStatus.SUCCEEDED, done.error
        alone_on = done.result
        assert len(during) == 8
        for job_id in during:
            owners = {e.worker for e in app.job_events(job_id) if e.reason == "claimed"}
            assert owners and alone_on not in owners
    finally:
        app.close()


def test_a_burst_worker_does_not_stop_while_a_suspect_waits(db_url: str) -> None:
    from treadle.worker import Worker, WorkerConfig

    app = Treadle(db_url)

    @app.task(name="plain")
    def plain(i: int) -> int:
        return i

    try:
        [suspect] = [h.id for h in plain.defer_many([{"i": 1}])]
        app.store.claim(queues=None, worker="ghost", limit=1, lease_seconds=0.2)
        wait_until(lambda: app.store.reap().total > 0 or bool(app.get_job(suspect).crashes),
                   20, "the crash reaped")
        others = [h.id for h in plain.defer_many({"i": i} for i in range(5))]
        worker = Worker(app.store, app.executors(), WorkerConfig(burst=True, concurrency=2),
                        **app.worker_options())
        worker.run()  # returns once no work is left, suspects included
        for job_id in [suspect, *others]:
            assert app.get_job(job_id).status is JobStatus.SUCCEEDED
    finally:
        app.close()
