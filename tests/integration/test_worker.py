"""The worker in-process against real databases: outcomes, timeouts, cancel, async."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from treadle import Continue, JobContext, JobStatus, Permanent, RateLimited, RetryPolicy, Treadle
from treadle.core.errors import ErrorClass
from treadle.core.job import NewJob
from treadle.core.lease import LeaseConfig
from treadle.testing import run_worker


@pytest.fixture
def app(db_url: str) -> Iterator[Treadle]:
    a = Treadle(db_url)
    yield a
    a.close()


def test_sync_and_async_tasks_return_results(app: Treadle) -> None:
    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="aadd")
    async def aadd(a: int) -> int:
        await asyncio.sleep(0.01)
        return a * 2

    h1, h2 = add.defer(a=2, b=3), aadd.defer(a=21)
    with run_worker(app):
        assert h1.wait(20).result == 5
        assert h2.wait(20).result == 42


def test_sync_task_past_its_timeout_is_stopped_and_the_slot_freed(app: Treadle) -> None:
    stopped = threading.Event()

    @app.task(name="spin", retries=0, timeout=0.5)
    def spin() -> None:
        try:
            while True:  # pure Python: the hard stop interrupts it
                time.sleep(0.001)
        finally:
            stopped.set()

    @app.task(name="quick")
    def quick() -> str:
        return "ok"

    h = spin.defer()
    with run_worker(app, concurrency=1):
        job = h.wait(20)
        assert job.status is JobStatus.FAILED and job.error is not None
        assert job.error.error_class is ErrorClass.TIMEOUT
        assert app.job_events(h.id)[-1].reason == "attempts_exhausted"  # timeouts retry
        assert stopped.wait(5)
        assert quick.defer().wait(20).result == "ok"  # concurrency 1: the slot came back


def test_async_task_timeout_is_cancelled(app: Treadle) -> None:
    @app.task(name="asleep", retries=0, timeout=0.3)
    async def asleep() -> None:
        await asyncio.sleep(60)

    with run_worker(app):
        job = asleep.defer().wait(20)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error.error_class is ErrorClass.TIMEOUT


def test_cancelling_a_running_job_stops_it(app: Treadle) -> None:
    started = threading.Event()

    @app.task(name="long", timeout=120, pass_context=True)
    def long(ctx: JobContext) -> None:
        started.set()
        while True:
            ctx.check()
            time.sleep(0.01)

    h = long.defer()
    with run_worker(app, lease=LeaseConfig(seconds=0.6)):
        assert started.wait(20)
        app.cancel(h.id)
        job = h.wait(20)
    assert job.status is JobStatus.CANCELLED
    assert [e.reason for e in app.job_events(h.id)][-1] == "cancelled"


def test_transient_errors_retry_with_backoff_then_succeed(app: Treadle) -> None:
    calls: list[int] = []

    @app.task(name="flaky", retries=3, retry_policy=RetryPolicy(base=0.05, cap=0.1),
              pass_context=True)
    def flaky(ctx: JobContext) -> int:
        calls.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("blip")
        return ctx.attempt

    with run_worker(app):
        h = flaky.defer()
        deadline = time.monotonic() + 20
        while not app.get_job(h.id).is_finished and time.monotonic() < deadline:
            time.sleep(0.05)
    job = app.get_job(h.id)
    assert job.status is JobStatus.SUCCEEDED and job.result == 3 and calls == [1, 2, 3]
    assert [e.reason for e in app.job_events(h.id)].count("retry") == 2


def test_permanent_and_bad_payload_fail_at_once(app: Treadle) -> None:
    @app.task(name="perm", retries=5)
    def perm() -> None:
        raise Permanent("nope")

    @app.task(name="typed", retries=5)
    def typed(x: int) -> int:
        return x

    with run_worker(app):
        p = perm.defer().wait(20)
        # A producer running other code than the worker (deployment skew) can still
        # enqueue a mismatched payload; the worker refuses it as invalid input.
        skewed = NewJob(task="typed", payload={"y": 1}, max_attempts=6)
        bad = app.enqueue([skewed])[0].wait(20)
    assert p.status is JobStatus.FAILED and p.attempt == 1
    assert p.error is not None and p.error.error_class is ErrorClass.PERMANENT
    assert bad.status is JobStatus.FAILED and bad.attempt == 1
    assert bad.error is not None and bad.error.error_class is ErrorClass.INVALID_INPUT


def test_non_json_result_fails_as_invalid_output(app: Treadle) -> None:
    @app.task(name="obj", retries=2)
    def obj() -> object:
        return object()

    with run_worker(app):
        job = obj.defer().wait(20)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error.error_class is ErrorClass.INVALID_OUTPUT and job.attempt == 1


def test_continue_checkpoints_into_a_fresh_attempt(app: Treadle) -> None:
    @app.task(name="steps", retries=0)
    def steps(step: int) -> int:
        if step < 3:
            raise Continue({"step": step + 1})
        return step

    with run_worker(app):
        job = steps.defer(step=1).wait(20)
    assert job.status is JobStatus.SUCCEEDED and job.result == 3 and job.attempt == 3
    assert [e.reason for e in app.job_events(job.id)].count("continued") == 2


def test_rate_limited_is_retried_no_sooner_than_retry_after(app: Treadle) -> None:
    @app.task(name="rl", retries=2, retry_policy=RetryPolicy(base=0, cap=0))
    def rl() -> None:
        raise RateLimited(retry_after=120)

    with run_worker(app):
        h = rl.defer()
        deadline = time.monotonic() + 20
        while app.get_job(h.id).attempt < 1 or app.get_job(h.id).status is JobStatus.RUNNING:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    job = app.get_job(h.id)
    assert job.status is JobStatus.QUEUED
    assert (job.run_at - job.created_at).total_seconds() >= 119


def test_job_logs_are_stored_per_attempt(app: Treadle) -> None:
    @app.task(name="chatty", pass_context=True)
    def chatty(ctx: JobContext) -> None:
        ctx.log("hello from attempt 1")

    with run_worker(app):
        h = chatty.defer()
        h.wait(20)
    logs = app.job_logs(h.id)
    assert [(x.attempt, x.message) for x in logs] == [(1, "hello from attempt 1")]


def test_a_payload_the_task_cannot_take_is_refused_before_anything_is_stored(
    app: Treadle,
) -> None:
    from treadle import InvalidInput
    from treadle.store import JobFilter

    @app.task(name="typed2")
    def typed2(x: int) -> int:
        return x

    with pytest.raises(InvalidInput, match="payload does not match task 'typed2'"):
        typed2.defer(y=1)
    with pytest.raises(InvalidInput):
        typed2.defer_many([{"x": 1}, {"x": 2, "z": 3}])
    assert app.list_jobs(JobFilter(task="typed2")) == []
