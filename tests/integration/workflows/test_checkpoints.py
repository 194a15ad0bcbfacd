"""Checkpoints on real stores: fenced by the lease token, big results by reference,
divergence fails the job permanently."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator

import pytest

from tests.integration.workflows.conftest import Running
from treadle import JobStatus, Treadle
from treadle.core.clock import ManualClock
from treadle.core.errors import ErrorClass
from treadle.core.job import JobKind, NewJob
from treadle.store.base import Transaction
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
    # Its worker died under it: a suspect now, claimed to run alone (ADR 0024).
    (new,) = mapp.store.claim(queues=None, worker="b", limit=1, lease_seconds=5, suspect=True)
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


def _side_row(log: SqlStepLog, key: str) -> Callable[[Transaction], None]:
    """A write of the caller's own, in the checkpoint's transaction: a row we can look up."""

    def write(tx: Transaction) -> None:
        tx.execute(log.db.q["put_blob"], {"hash": key, "data": '"side"'})

    return write


def _has(log: SqlStepLog, key: str) -> bool:
    return bool(log.db.read("blob", {"hash": key}))


def test_a_checkpoint_and_its_extra_writes_commit_together(mapp: Treadle) -> None:
    mapp.enqueue([NewJob(task="wf", kind=JobKind.WORKFLOW, max_attempts=3)])
    (job,) = mapp.store.claim(queues=None, worker="a", limit=1, lease_seconds=30)
    log = SqlStepLog(mapp.workflows.db, job)
    log.complete(0, "small", StepKind.STEP, '"ok"', started_at=mapp.clock.now(),
                 also=_side_row(log, "side-small"))
    big = json.dumps("y" * (INLINE_RESULT_BYTES + 1))  # its blob is in the same transaction
    log.complete(1, "big", StepKind.STEP, big, also=_side_row(log, "side-big"))
    assert _has(log, "side-small") and _has(log, "side-big")
    steps = mapp.job_steps(job.id)
    assert [(s.name, s.status) for s in steps] == [("small", StepStatus.COMPLETED),
                                                   ("big", StepStatus.COMPLETED)]
    assert log.load_result(log.load()[1].result_ref or "") == json.loads(big)


def test_a_failing_extra_write_rolls_the_checkpoint_back(mapp: Treadle) -> None:
    mapp.enqueue([NewJob(task="wf", kind=JobKind.WORKFLOW, max_attempts=3)])
    (job,) = mapp.store.claim(queues=None, worker="a", limit=1, lease_seconds=30)
    log = SqlStepLog(mapp.workflows.db, job)
    big = json.dumps("z" * (INLINE_RESULT_BYTES + 1))

    def then_fail(tx: Transaction) -> None:
        _side_row(log, "side-lost")(tx)
        raise RuntimeError("ledger refused")

    with pytest.raises(RuntimeError, match="ledger refused"):
        log.complete(0, "s", StepKind.STEP, big, started_at=mapp.clock.now(), also=then_fail)
    assert not _has(log, "side-lost") and log.load() == []  # not even the step's start
    assert not log.db.read("blob", {"hash": hashlib.sha256(big.encode()).hexdigest()})
    assert "step_started" not in [e.reason for e in mapp.job_events(job.id)]


def test_a_zombie_writes_neither_the_checkpoint_nor_its_extra_rows(
    mapp: Treadle, clock: ManualClock,
) -> None:
    mapp.enqueue([NewJob(task="wf", kind=JobKind.WORKFLOW, max_attempts=3)])
    (old,) = mapp.store.claim(queues=None, worker="a", limit=1, lease_seconds=5)
    clock.advance(6)
    assert mapp.store.reap().requeued == 1
    assert len(mapp.store.claim(queues=None, worker="b", limit=1, lease_seconds=5,
                                suspect=True)) == 1  # a suspect after its crash (ADR 0024)
    zombie = SqlStepLog(mapp.workflows.db, old)
    called: list[bool] = []

    def write(tx: Transaction) -> None:
        called.append(True)
        _side_row(zombie, "side-zombie")(tx)

    with pytest.raises(FencedSignal):
        zombie.complete(0, "s", StepKind.STEP, '"stale"', started_at=clock.now(), also=write)
    assert called == [] and not _has(zombie, "side-zombie") and zombie.load() == []
