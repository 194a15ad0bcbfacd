"""Checkpoints on real stores: fenced by the lease token, big results by reference,
divergence fails the job permanently."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.workflows.conftest import Running
from treadle import JobStatus, Treadle
from treadle.core.clock import ManualClock
from treadle.core.errors import ErrorClass
from treadle.core.job import JobKind, NewJob
from treadle.workflows import StepStatus, WorkflowContext
from treadle.workflows.model import FencedSignal, StepKind
from treadle.workflows.steplog import INLINE_RESULT_BYTES, SqlStepLog


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def mapp(db_url: str, clock: ManualClock) -> Iterator[Treadle]:
    a = Treadle(db_url, clock=clock)
    yield a
    a.close()


def test_a_zombie_attempt_cannot_write_a_checkpoint(mapp: Treadle, clock: ManualClock) -> None:
    mapp.enqueue([NewJob(task="wf", kind=JobKind.WORKFLOW, max_attempts=3)])
    (old,) = mapp.store.claim(queues=None, worker="a", limit=1, lease_seconds=5)
    zombie = SqlStepLog(mapp.workflows.db, old)
    zombie.start(0, "s", StepKind.STEP)
    clock.advance(6)
    assert mapp.store.reap().requeued == 1
    (new,) = mapp.store.claim(queues=None, worker="b", limit=1, lease_seconds=5)
    assert new.lease_token > old.lease_token
    with pytest.raises(FencedSignal):
        zombie.complete(0, "s", StepKind.STEP, '"stale"')
    fresh = SqlStepLog(mapp.workflows.db, new)
    assert fresh.start(0, "s", StepKind.STEP) == 2
    fresh.complete(0, "s", StepKind.STEP, '"fresh"')
    (step,) = mapp.job_steps(new.id)
    assert step.result == "fresh" and step.status is StepStatus.COMPLETED
    reasons = [e.reason for e in mapp.job_events(new.id)]
    assert reasons.count("step_started") == 2 and reasons.count("step_completed") == 1


def test_big_results_are_stored_by_reference_and_replayed(mapp: Treadle,
                                                          clock: ManualClock) -> None:
    big = "x" * (INLINE_RESULT_BYTES + 10)

    @mapp.workflow(name="big")
    def flow(ctx: WorkflowContext) -> int:
        value = ctx.step("make", lambda: big)
        ctx.sleep(5)  # the replay after the wake loads "make" from its blob
        return len(ctx.step("use", lambda: value))

    h = flow.defer()
    with Running(mapp):
        from tests.integration.workflows.procs import wait_until

        wait_until(lambda: mapp.get_job(h.id).status is JobStatus.WAITING, 20, "the sleep")
        clock.advance(6)
        assert h.wait(20).result == len(big)
    make, _, use = mapp.job_steps(h.id)
    assert make.result is None and make.result_ref is not None
    assert use.result_ref is not None and use.result_ref == make.result_ref  # stored once


def test_divergence_on_replay_fails_the_job_permanently(mapp: Treadle,
                                                        clock: ManualClock) -> None:
    order = ["a", "b"]

    @mapp.workflow(name="fickle", retries=5)
    def fickle(ctx: WorkflowContext) -> None:
        ctx.step(order[0], lambda: 1)
        ctx.sleep(5)
        ctx.step(order[1], lambda: 2)

    h = fickle.defer()
    with Running(mapp):
        from tests.integration.workflows.procs import wait_until

        wait_until(lambda: mapp.get_job(h.id).status is JobStatus.WAITING, 20, "the sleep")
        order.reverse()  # "new code" deployed while the workflow sleeps
        clock.advance(6)
        job = h.wait(20)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error.error_class is ErrorClass.PERMANENT
    assert "not deterministic" in job.error.message and "'a'" in job.error.message
    assert job.attempt == 2  # not retried


def test_a_duplicate_step_name_fails_the_job(mapp: Treadle) -> None:
    @mapp.workflow(name="dup", retries=3)
    def dup(ctx: WorkflowContext) -> None:
        ctx.step("same", lambda: 1)
        ctx.step("same", lambda: 2)

    with Running(mapp):
        job = dup.defer().wait(20)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error.error_class is ErrorClass.PERMANENT and "used twice" in job.error.message


def test_a_non_json_step_result_fails_the_job_naming_the_step(mapp: Treadle) -> None:
    @mapp.workflow(name="setty", retries=3)
    def setty(ctx: WorkflowContext) -> None:
        ctx.step("make_set", lambda: {1, 2})

    with Running(mapp):
        job = setty.defer().wait(20)
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error.error_class is ErrorClass.PERMANENT and "'make_set'" in job.error.message
    (step,) = mapp.job_steps(job.id)
    assert step.status is StepStatus.FAILED
