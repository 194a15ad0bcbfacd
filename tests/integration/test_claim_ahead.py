"""Claim ahead (ADR 0017): jobs claimed beyond the free slots are held under lease,
started as slots free up, and released without using up an attempt when the worker stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.acceptance.conftest import wait_until
from treadle import JobStatus, Treadle
from treadle.core.errors import ConfigurationError
from treadle.core.lease import LeaseConfig
from treadle.testing import run_worker
from treadle.worker import WorkerConfig


@pytest.fixture
def app(db_url: str) -> Iterator[Treadle]:
    a = Treadle(db_url)
    yield a
    a.close()


def _running(app: Treadle) -> int:
    return app.store.count_by_status().get("running", 0)


def test_jobs_claimed_ahead_are_released_at_stop_without_using_an_attempt(app: Treadle) -> None:
    gate = threading.Event()
    began: list[int] = []

    @app.task(name="block", retries=0)
    def block(i: int) -> int:
        began.append(i)
        gate.wait(30)
        return i

    handles = [block.defer(i=i) for i in range(4)]
    with run_worker(app, concurrency=1, prefetch=3, shutdown_grace=30.0) as worker:
        # One slot runs, three are held ahead: four leases, one attempt begun.
        wait_until(lambda: _running(app) == 4, 20, "four jobs claimed")
        wait_until(lambda: began == [0], 20, "the first to begin")
        worker.stop()
        # The stop releases the ahead jobs at once, before the running one's grace ends.
        wait_until(lambda: all(app.get_job(h.id).status is JobStatus.QUEUED
                               for h in handles[1:]), 20, "ahead jobs released")
        gate.set()
    assert app.get_job(handles[0].id).status is JobStatus.SUCCEEDED
    assert began == [0]
    for h in handles[1:]:
        job = app.get_job(h.id)
        # The claim counted an attempt and the release gave it back (max_attempts + 1).
        assert job.attempt == 1 and job.max_attempts == 2
        assert [e.reason for e in app.job_events(h.id)] == ["enqueued", "claimed", "released"]
    with run_worker(app, concurrency=2):
        for h in handles[1:]:
            assert h.wait(20).status is JobStatus.SUCCEEDED  # and they still run: retries=0


def test_ahead_leases_are_heartbeated_and_timeouts_run_from_the_start(app: Treadle) -> None:
    @app.task(name="slow", retries=0)
    def slow() -> str:
        time.sleep(2.0)  # four lease lengths: the held-ahead jobs need their heartbeats
        return "slow"

    @app.task(name="quick", retries=0, timeout=0.5)
    def quick() -> str:
        return "quick"  # waits ~2 s ahead: past its timeout if that ran from the claim

    first = slow.defer()
    rest = [quick.defer() for _ in range(2)]
    with run_worker(app, concurrency=1, prefetch=2, lease=LeaseConfig(seconds=0.5)):
        wait_until(lambda: _running(app) == 3, 20, "three jobs claimed")
        assert first.wait(20).result == "slow"
        for h in rest:
            assert h.wait(20).result == "quick"
    for h in [first, *rest]:
        reasons = [e.reason for e in app.job_events(h.id)]
        assert reasons == ["enqueued", "claimed", "completed"], reasons


def test_cancelling_a_job_held_ahead_never_runs_it(app: Treadle) -> None:
    gate = threading.Event()
    ran: list[str] = []

    @app.task(name="hold", retries=0)
    def hold(tag: str) -> None:
        ran.append(tag)
        gate.wait(30)

    a, b = hold.defer(tag="a"), hold.defer(tag="b")
    with run_worker(app, concurrency=1, prefetch=1, lease=LeaseConfig(seconds=0.6)):
        wait_until(lambda: _running(app) == 2, 20, "both claimed")
        app.cancel(b.id)  # running (held ahead): a cancel request, seen by the heartbeat
        assert b.wait(20).status is JobStatus.CANCELLED
        gate.set()
        assert a.wait(20).status is JobStatus.SUCCEEDED
    assert ran == ["a"]


def test_prefetch_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="prefetch"):
        WorkerConfig(prefetch=-1)
    assert WorkerConfig(prefetch=0).prefetch == 0


def test_adaptive_prefetch_grows_while_slots_starve_and_resets_when_a_claim_is_short(
    app: Treadle,
) -> None:
    from treadle.worker import Worker

    worker = Worker(app.store, app.executors(), WorkerConfig(concurrency=4))
    assert worker.adaptive and worker.prefetch == 4
    worker._adapt_prefetch(full=True)  # nothing ahead, slots idle: the claim was too small
    assert worker.prefetch == 8
    for _ in range(10):
        worker._adapt_prefetch(full=True)
    assert worker.prefetch == 64  # at most 16 x concurrency
    worker._adapt_prefetch(full=False)  # no backlog any more
    assert worker.prefetch == 4
    fixed = Worker(app.store, app.executors(), WorkerConfig(concurrency=4, prefetch=3))
    assert not fixed.adaptive and fixed.prefetch == 3


def test_a_backlog_of_short_jobs_drains_with_the_adaptive_default(app: Treadle) -> None:
    @app.task(name="tiny", retries=0)
    def tiny(i: int) -> int:
        return i

    handles = tiny.defer_many([{"i": i} for i in range(300)])
    with run_worker(app, concurrency=2) as worker:
        for h in handles:
            assert h.wait(30).status is JobStatus.SUCCEEDED
        assert worker.prefetch <= 32
    assert {e.reason for h in handles[:20] for e in app.job_events(h.id)} == {
        "enqueued", "claimed", "completed"}
