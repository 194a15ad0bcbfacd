"""Usage accounting (ADR 0022) against real stores: figures checked against tasks that
burn a known amount of CPU, write known bytes, and against the store's guarded writes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from treadle import Treadle
from treadle.context import JobContext
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.core.usage import Usage, encoded_size
from treadle.store.usage import UsageReader
from treadle.testing import run_worker

BURN = 0.3


def burn(seconds: float) -> None:
    """Spin until this thread has used ``seconds`` of CPU (not wall: load-proof)."""
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass


@pytest.fixture
def app(db_url: str) -> Iterator[Treadle]:
    app = Treadle(db_url)

    @app.task(name="burn")
    def burn_task(seconds: float) -> dict[str, Any]:
        burn(seconds)
        return {"burnt": seconds, "note": "é" * 10}

    @app.task(name="nap")
    def nap(seconds: float) -> None:
        time.sleep(seconds)

    @app.task(name="chatty", pass_context=True, queue="talk")
    def chatty(lines: list[str], ctx: JobContext) -> None:
        for line in lines:
            ctx.log(line)

    @app.task(name="paid", pass_context=True)
    def paid(ctx: JobContext) -> None:
        ctx.record_usage(tokens_in=120, tokens_out=30, cost_usd=0.0025)
        ctx.record_usage(tokens_in=5, tokens_out=1, cost_usd=float("nan"))  # clamped to 0

    @app.task(name="spin_forever", timeout=1.0, retries=0)
    def spin_forever() -> None:
        while True:
            pass

    app.migrate()
    yield app
    app.close()


def _row(app: Treadle, job_id: int) -> dict[str, Any]:
    rows = UsageReader(app.store).attempts(job_id)
    assert len(rows) == 1, rows
    return rows[0]


def test_cpu_of_a_busy_task_is_its_thread_cpu(app: Treadle) -> None:
    burner = app.defer("burn", {"seconds": BURN})
    sleeper = app.defer("nap", {"seconds": 0.3})
    with run_worker(app, concurrency=2):
        assert burner.wait(30).status.value == "succeeded"
        sleeper.wait(30)
    hot = _row(app, burner.id)
    # Thread CPU: at least what it burnt, plus little; the sleeper running beside it on
    # another thread is not counted, and wall time can only be longer.
    assert BURN <= hot["cpu_seconds"] < BURN + 0.1
    assert hot["wall_seconds"] >= hot["cpu_seconds"]
    assert hot["result_bytes"] == encoded_size({"burnt": BURN, "note": "é" * 10})
    assert (hot["outcome"], hot["tenant"], hot["queue"], hot["task"]) == (
        "succeeded", "default", "default", "burn")
    cold = _row(app, sleeper.id)
    assert cold["cpu_seconds"] < 0.05 and cold["wall_seconds"] >= 0.3
    assert cold["result_bytes"] == encoded_size(None)


def test_log_bytes_tokens_and_cost(app: Treadle) -> None:
    lines = ["plain", "naïve ☃", "x" * 1000]
    talk = app.defer("chatty", {"lines": lines})
    paid = app.defer("paid")
    with run_worker(app):
        talk.wait(30)
        paid.wait(30)
    assert _row(app, talk.id)["log_bytes"] == sum(len(line.encode()) for line in lines)
    money = _row(app, paid.id)
    assert (money["tokens_in"], money["tokens_out"]) == (125, 31)
    assert money["cost_usd"] == pytest.approx(0.0025)


def test_a_timed_out_attempt_still_reports_its_cpu(app: Treadle) -> None:
    handle = app.defer("spin_forever")
    with run_worker(app):
        job = handle.wait(30)
    assert job.status.value == "failed" and job.error is not None
    row = _row(app, handle.id)
    assert row["outcome"] == "failed" and row["error_class"] == "timeout"
    # Measured from outside the spinning thread when the deadline stopped it.
    assert row["cpu_seconds"] is not None and 0.05 < row["cpu_seconds"] <= row["wall_seconds"]


def test_usage_is_written_once_and_only_for_the_lease_holder(app: Treadle) -> None:
    handle = app.defer("nap", {"seconds": 0})
    (job,) = app.store.claim(queues=None, worker="w1", limit=1, lease_seconds=30)
    spent = Usage(wall_seconds=0.5, cpu_seconds=0.25, result_bytes=4)
    stale = Outcome(job.id, job.lease_token - 1, OutcomeKind.SUCCEEDED, "zombie",
                    result=None, usage=spent)
    assert app.store.complete([stale]) == [False]
    assert UsageReader(app.store).attempts(handle.id) == []
    good = Outcome(job.id, job.lease_token, OutcomeKind.SUCCEEDED, "w1", result=None,
                   usage=spent)
    assert app.store.complete([good]) == [True]
    assert app.store.complete([good]) == [True]  # a replay after a lost reply
    row = _row(app, handle.id)
    assert (row["cpu_seconds"], row["wall_seconds"], row["attempt"]) == (0.25, 0.5, 1)


def test_hostile_figures_are_clamped_not_stored_raw(app: Treadle) -> None:
    handle = app.defer("nap", {"seconds": 0})
    (job,) = app.store.claim(queues=None, worker="w1", limit=1, lease_seconds=30)
    bad = Usage(wall_seconds=float("inf"), cpu_seconds=float("nan"), peak_memory_bytes=-5,
                result_bytes=2**80, tokens_in=-1, cost_usd=float("-inf"))
    oc = Outcome(job.id, job.lease_token, OutcomeKind.SUCCEEDED, "w1", usage=bad)
    assert app.store.complete([oc]) == [True]
    row = _row(app, handle.id)
    assert row["wall_seconds"] == 0.0 and row["cpu_seconds"] is None
    assert row["peak_memory_bytes"] == 0 and row["result_bytes"] == 2**62
    assert row["tokens_in"] == 0 and row["cost_usd"] == 0.0


def test_sums_per_tenant_and_queue_over_a_range(app: Treadle) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    task = app.get_task("chatty")
    jobs = [task.new_job({"lines": ["ab"]}, tenant="acme"),
            task.new_job({"lines": ["abc"]}, tenant="acme", queue="other"),
            task.new_job({"lines": ["abcd"]}, tenant="zeta")]
    handles = app.enqueue(jobs)
    with run_worker(app):
        for h in handles:
            h.wait(30)
    end = datetime.now(UTC) + timedelta(seconds=1)
    reader = UsageReader(app.store)
    by_tenant = {r.group: r for r in reader.summary(start=start, end=end, group_by="tenant")}
    assert set(by_tenant) == {"acme", "zeta"}
    assert (by_tenant["acme"].attempts, by_tenant["acme"].log_bytes) == (2, 5)
    assert (by_tenant["zeta"].attempts, by_tenant["zeta"].log_bytes) == (1, 4)
    by_queue = {r.group: r for r in reader.summary(start=start, end=end, group_by="queue",
                                                   tenant="acme")}
    assert {q: r.log_bytes for q, r in by_queue.items()} == {"talk": 2, "other": 3}
    assert reader.summary(start=end, end=end + timedelta(hours=1), group_by="tenant") == []
