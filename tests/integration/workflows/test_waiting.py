"""The `waiting` state: no slot, no lease; woken by time, event, children; cancel, retry."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.workflows.conftest import Running
from tests.integration.workflows.procs import wait_until
from treadle import JobStatus, Treadle
from treadle.core.clock import ManualClock
from treadle.core.errors import ErrorClass
from treadle.workflows import ChildResult, StepStatus, WorkflowContext


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def mapp(db_url: str, clock: ManualClock) -> Iterator[Treadle]:
    a = Treadle(db_url, clock=clock)
    yield a
    a.close()


def status(app: Treadle, job_id: int) -> JobStatus:
    return app.get_job(job_id).status


def test_a_sleeping_workflow_holds_no_slot(mapp: Treadle, clock: ManualClock) -> None:
    @mapp.task(name="quick")
    def quick() -> str:
        return "ok"

    @mapp.workflow(name="nap")
    def nap(ctx: WorkflowContext) -> str:
        ctx.step("before", lambda: 1)
        ctx.sleep(3600)
        return ctx.step("after", lambda: "awake")

    h = nap.defer()
    with Running(mapp, concurrency=1):
        wait_until(lambda: status(mapp, h.id) is JobStatus.WAITING, 20, "the nap")
        job = mapp.get_job(h.id)
        assert job.lease_owner is None and job.lease_expires_at is None  # no lease
        # One worker, one slot: other jobs run while the workflow sleeps.
        assert [quick.defer().wait(20).result for _ in range(3)] == ["ok"] * 3
        assert status(mapp, h.id) is JobStatus.WAITING
        clock.advance(3599)
        mapp.workflows.waker.sweep()
        assert status(mapp, h.id) is JobStatus.WAITING  # not due yet
        clock.advance(2)
        assert h.wait(20).result == "awake"
    reasons = [e.reason for e in mapp.job_events(h.id)]
    assert reasons.count("waiting") == 1 and reasons.count("woken") == 1


def test_an_event_sent_before_the_wait_is_received(mapp: Treadle, clock: ManualClock) -> None:
    @mapp.workflow(name="approval")
    def approval(ctx: WorkflowContext, who: str) -> Any:
        ctx.sleep(60)  # the event arrives during this sleep, before the wait begins
        return ctx.wait_event(f"approve:{who}", timeout=3600)

    h = approval.defer(who="acme")
    with Running(mapp, concurrency=1):
        wait_until(lambda: status(mapp, h.id) is JobStatus.WAITING, 20, "the sleep")
        mapp.send_event("approve:acme", {"by": "ops"})
        mapp.send_event("approve:other", {"by": "nobody"})
        clock.advance(61)
        assert h.wait(20).result == {"by": "ops"}
    steps = mapp.job_steps(h.id)
    assert steps[1].event_key == "approve:acme" and steps[1].event_id is not None


def test_wait_event_wakes_on_send_and_times_out_to_none(
    mapp: Treadle, clock: ManualClock
) -> None:
    @mapp.workflow(name="two_waits")
    def two_waits(ctx: WorkflowContext) -> list[Any]:
        first = ctx.wait_event("k", timeout=100)
        second = ctx.wait_event("k", timeout=100)  # a second event, not the first again
        return [first, second]

    h = two_waits.defer()
    with Running(mapp, concurrency=1):
        wait_until(lambda: status(mapp, h.id) is JobStatus.WAITING, 20, "the first wait")
        mapp.send_event("k", 1)  # woken in the event's own transaction
        wait_until(lambda: len(mapp.job_steps(h.id)) == 2
                   and status(mapp, h.id) is JobStatus.WAITING, 20, "the second wait")
        clock.advance(101)
        assert h.wait(20).result == [1, None]


def test_map_collect_and_fail_fast(mapp: Treadle) -> None:
    @mapp.task(name="maybe", retries=0)
    def maybe(i: int) -> int:
        if i == 2:
            raise ValueError("two is bad")
        return i

    @mapp.workflow(name="collector", retries=0)
    def collector(ctx: WorkflowContext) -> list[Any]:
        items: list[ChildResult] = ctx.map("items", maybe, [{"i": i} for i in range(4)],
                                           on_error="collect")
        assert all(isinstance(r, ChildResult) for r in items)
        outcomes: list[Any] = []
        for r in items:
            if r.ok:
                outcomes.append(r.result)
            else:
                assert r.error is not None  # a failed child carries its error
                outcomes.append(r.error.error_class.value)
        return outcomes

    @mapp.workflow(name="strict", retries=0)
    def strict(ctx: WorkflowContext) -> list[int]:
        return ctx.map("items", maybe, [{"i": i} for i in range(4)])

    with Running(mapp):
        assert collector.defer().wait(30).result == [0, 1, "transient", 3]
        job = strict.defer().wait(30)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error.error_class is ErrorClass.TRANSIENT  # the child's class
    assert "two is bad" in job.error.message
    assert mapp.job_steps(job.id)[0].status is StepStatus.FAILED


def test_cancel_a_waiting_workflow_cancels_its_children(mapp: Treadle) -> None:
    gate = threading.Event()

    @mapp.task(name="blocked", retries=0, timeout=60)
    def blocked(i: int) -> int:
        gate.wait(30)
        return i

    @mapp.workflow(name="parent")
    def parent(ctx: WorkflowContext) -> list[int]:
        return ctx.map("kids", blocked, [{"i": i} for i in range(6)])

    h = parent.defer()
    # prefetch=0: "running" in the store means executing here, none held ahead (ADR 0017).
    with Running(mapp, concurrency=2, prefetch=0):
        wait_until(lambda: status(mapp, h.id) is JobStatus.WAITING, 20, "the fan-out")
        kids = mapp.job_steps(h.id)[0].children
        wait_until(lambda: sum(status(mapp, k) is JobStatus.RUNNING for k in kids) == 2, 20,
                   "two children running")
        running = {k for k in kids if status(mapp, k) is JobStatus.RUNNING}
        assert mapp.cancel(h.id).status is JobStatus.CANCELLED
        # Children not running are cancelled with it; running ones are asked to stop
        # (their worker acts on it at its next heartbeat, as for any running job).
        for k in kids:
            job = mapp.get_job(k)
            if k in running:
                assert job.cancel_requested or job.is_finished
            else:
                assert job.status is JobStatus.CANCELLED
        gate.set()
        wait_until(lambda: all(mapp.get_job(k).is_finished for k in kids), 20, "children")
        assert status(mapp, h.id) is JobStatus.CANCELLED
        # A retry resumes: the children cancelled with it run again; none is created anew.
        mapp.retry(h.id)
        assert h.wait(30).result == list(range(6))
    assert mapp.job_steps(h.id)[0].children == kids


def test_retry_resumes_from_the_last_checkpoint(mapp: Treadle) -> None:
    runs: list[str] = []
    fail = {"b": True}

    def step(name: str) -> str:
        runs.append(name)
        if fail.get(name):
            raise ValueError(f"{name} failed")
        return name

    @mapp.workflow(name="abc", retries=0)
    def abc(ctx: WorkflowContext) -> list[str]:
        return [ctx.step(n, step, n) for n in "abc"]

    h = abc.defer()
    with Running(mapp):
        assert h.wait(20).status is JobStatus.FAILED
        fail.clear()
        mapp.retry(h.id)
        assert h.wait(20).result == ["a", "b", "c"]
    assert runs == ["a", "b", "b", "c"]
    b = mapp.job_steps(h.id)[1]
    assert b.attempt == 2 and b.status is StepStatus.COMPLETED


def test_spawn_a_child_workflow_and_fire_and_forget(mapp: Treadle) -> None:
    @mapp.task(name="note", retries=0)
    def note(text: str) -> str:
        return text.upper()

    @mapp.workflow(name="inner")
    def inner(ctx: WorkflowContext, n: int) -> int:
        return ctx.step("square", lambda: n * n) + ctx.map("one", note, [{"text": "x"}]).count("X")

    @mapp.workflow(name="outer")
    def outer(ctx: WorkflowContext) -> list[Any]:
        child_result = ctx.spawn("inner", inner, {"n": 4})  # waits, no slot held
        fired = ctx.spawn("note", "note", {"text": "later"}, wait=False)  # an id, at once
        return [child_result, fired]

    h = outer.defer()
    with Running(mapp, concurrency=1):  # one slot: outer waits while inner runs
        result = h.wait(30).result
    assert result[0] == 17
    fired = mapp.get_job(result[1])
    assert fired.parent_id == h.id and fired.task == "note"
    steps = mapp.job_steps(h.id)
    assert [s.kind.value for s in steps] == ["spawn", "spawn"]
    inner_job = mapp.get_job(steps[0].children[0])
    assert inner_job.kind.value == "workflow" and inner_job.parent_id == h.id
