"""The replay engine over an in-memory step log: replay, determinism, bad input."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, assert_type

import pytest

from treadle.context import JobContext
from treadle.core.budget import Deadline
from treadle.core.clock import ManualClock
from treadle.core.errors import ErrorClass, ErrorInfo
from treadle.core.job import Job, JobKind, NewJob
from treadle.core.lifecycle import JobStatus
from treadle.workflows import (
    DuplicateStep,
    NonDeterministic,
    StepResultNotJson,
    WorkflowContext,
    current_step_key,
)
from treadle.workflows.model import ChildState, Step, StepKind, StepStatus, SuspendSignal


class MemoryLog:
    """A StepLog in a dict; survives "crashes" (new contexts over the same log)."""

    def __init__(self) -> None:
        self.steps: dict[int, Step] = {}
        self.events: list[tuple[int, str, Any]] = []
        self.writes = 0
        self.tx = object()  # stands for the store transaction of a checkpoint

    def load(self) -> list[Step]:
        return [self.steps[k] for k in sorted(self.steps)]

    def load_result(self, ref: str) -> Any:
        raise AssertionError("no refs in memory")

    def _put(self, seq: int, name: str, kind: StepKind, status: StepStatus, **kw: Any) -> None:
        self.writes += 1
        old = self.steps.get(seq)
        attempt = (old.attempt if old else 0) + (1 if status is StepStatus.RUNNING else 0)
        self.steps[seq] = Step(name=name, status=status, attempt=max(attempt, 1), seq=seq,
                               kind=kind, **kw)

    def start(self, seq: int, name: str, kind: StepKind) -> int:
        self._put(seq, name, kind, StepStatus.RUNNING)
        return self.steps[seq].attempt

    def complete(self, seq: int, name: str, kind: StepKind, result_json: str, *,
                 event_key: str | None = None, event_id: int | None = None,
                 started_at: datetime | None = None,
                 also: Callable[[Any], None] | None = None) -> None:
        if also is not None:  # first: if it raises, nothing is written (a rollback)
            also(self.tx)
        if started_at is not None:
            self.start(seq, name, kind)
        self._put(seq, name, kind, StepStatus.COMPLETED, result=json.loads(result_json),
                  event_key=event_key, event_id=event_id)

    def fail(self, seq: int, name: str, kind: StepKind, error: ErrorInfo, *,
             started_at: datetime | None = None) -> None:
        if started_at is not None:
            self.start(seq, name, kind)
        self._put(seq, name, kind, StepStatus.FAILED, error=error)

    def wait(self, seq: int, name: str, kind: StepKind, *, wake_at: datetime | None = None,
             event_key: str | None = None, event_after: int = 0,
             fail_fast: bool = True) -> None:
        self._put(seq, name, kind, StepStatus.WAITING, wake_at=wake_at, event_key=event_key,
                  event_after=event_after, fail_fast=fail_fast)

    def find_event(self, key: str, after: int) -> tuple[int, Any] | None:
        return next(((i, p) for i, k, p in self.events if k == key and i > after), None)

    def spawn(self, seq: int, name: str, kind: StepKind, jobs: Sequence[NewJob], *,
              fail_fast: bool, completed: bool) -> list[int]:
        raise NotImplementedError  # children are covered by the integration tests

    def children(self, seq: int) -> list[ChildState]:
        raise NotImplementedError

    def retried_after_cancel(self, since: datetime) -> bool:
        raise NotImplementedError

    def retry_children(self, seq: int) -> int:
        raise NotImplementedError


CLOCK = ManualClock()


def run(log: MemoryLog, fn: Callable[[WorkflowContext], Any]) -> Any:
    job = Job(id=7, queue="q", kind=JobKind.WORKFLOW, task="wf", payload={},
              status=JobStatus.RUNNING, priority=0, run_at=CLOCK.now(), attempt=1,
              max_attempts=3, timeout=None, tenant="t", created_at=CLOCK.now())
    jctx = JobContext(job, "w", Deadline.after(None, CLOCK))
    ctx = WorkflowContext(jctx, log, CLOCK, lambda task, payload: NewJob(task="x"))
    result = fn(ctx)
    ctx.finish()
    return result


def test_finished_steps_replay_without_running_and_the_first_unfinished_reruns() -> None:
    calls: list[str] = []
    crash_at = {"c"}

    def work(name: str) -> str:
        calls.append(name)
        if name in crash_at:
            raise KeyboardInterrupt  # the process dies mid-step
        return name.upper()

    def flow(ctx: WorkflowContext) -> list[str]:
        return [ctx.step(n, work, n) for n in "abcd"]

    log = MemoryLog()
    with pytest.raises(KeyboardInterrupt):
        run(log, flow)
    crash_at.clear()
    assert run(log, flow) == ["A", "B", "C", "D"]
    assert calls == ["a", "b", "c", "c", "d"]
    # A short step writes its start with its result, so the crashed run left no trace.
    assert log.steps[2].attempt == 1


def test_a_long_step_is_recorded_as_started_while_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    from treadle.workflows import context

    monkeypatch.setattr(context, "STEP_START_GRACE", 0.0)
    log = MemoryLog()
    seen = threading.Event()

    def slow() -> str:
        for _ in range(500):  # until the timer wrote the start
            if 0 in log.steps:
                seen.set()
                break
            threading.Event().wait(0.01)
        raise KeyboardInterrupt  # then the process dies

    with pytest.raises(KeyboardInterrupt):
        run(log, lambda ctx: ctx.step("slow", slow))
    assert seen.is_set() and log.steps[0].status is StepStatus.RUNNING
    assert run(log, lambda ctx: ctx.step("slow", lambda: "ok")) == "ok"
    assert log.steps[0].attempt == 2  # the crashed run counts: its start was written


def test_results_are_json_round_tripped_on_the_first_run_too() -> None:
    log = MemoryLog()
    first = run(log, lambda ctx: ctx.step("t", lambda: (1, 2)))
    assert first == [1, 2] and run(log, lambda ctx: ctx.step("t", lambda: (9,))) == [1, 2]


def test_steps_in_another_order_on_replay_fail_permanently() -> None:
    log = MemoryLog()
    run(log, lambda ctx: [ctx.step("a", lambda: 1), ctx.step("b", lambda: 2)])
    with pytest.raises(NonDeterministic, match=r"step #0 was step .a..*now step .b.") as info:
        run(log, lambda ctx: [ctx.step("b", lambda: 2), ctx.step("a", lambda: 1)])
    assert info.value.error_class is ErrorClass.PERMANENT


def test_swallowing_the_divergence_does_not_help() -> None:
    log = MemoryLog()
    run(log, lambda ctx: ctx.step("a", lambda: 1))

    def sneaky(ctx: WorkflowContext) -> str:
        with contextlib.suppress(Exception):
            ctx.step("other", lambda: 1)
        return "done"

    with pytest.raises(NonDeterministic):
        run(log, sneaky)


def test_returning_before_steps_an_earlier_run_reached_is_a_divergence() -> None:
    log = MemoryLog()
    run(log, lambda ctx: [ctx.step("a", lambda: 1), ctx.step("b", lambda: 2)])
    with pytest.raises(NonDeterministic, match="earlier run had reached step #1 'b'"):
        run(log, lambda ctx: ctx.step("a", lambda: 1))


def test_a_duplicate_step_name_fails_permanently() -> None:
    with pytest.raises(DuplicateStep, match="'a' is used twice"):
        run(MemoryLog(), lambda ctx: [ctx.step("a", lambda: 1), ctx.step("a", lambda: 2)])


def test_a_non_json_result_is_a_permanent_error_naming_the_step() -> None:
    log = MemoryLog()
    with pytest.raises(StepResultNotJson, match="step 'load'") as info:
        run(log, lambda ctx: ctx.step("load", lambda: object()))
    assert info.value.error_class is ErrorClass.PERMANENT
    assert log.steps[0].status is StepStatus.FAILED


def test_a_failing_step_is_recorded_and_the_error_propagates() -> None:
    log = MemoryLog()

    def boom() -> None:
        raise ValueError("nope")

    with pytest.raises(ValueError, match="nope"):
        run(log, lambda ctx: ctx.step("x", boom))
    err = log.steps[0].error
    assert err is not None and err.error_class is ErrorClass.TRANSIENT


def test_each_step_sees_a_stable_idempotency_key() -> None:
    keys: list[str | None] = []
    log = MemoryLog()

    def flow(ctx: WorkflowContext) -> None:
        ctx.step("pay", lambda: keys.append(current_step_key()))
        assert current_step_key() is None  # only inside a step
        assert ctx.idempotency_key("pay") == keys[0]

    run(log, flow)
    assert keys == ["treadle:7:pay"]


def test_async_step_functions_are_awaited() -> None:
    async def fetch() -> int:
        return 41

    def flow(ctx: WorkflowContext) -> int:
        # The awaited value, at run time and to the type checker (mypy --strict tests).
        fetched = assert_type(ctx.step("f", fetch), int)
        assert isinstance(fetched, int)
        return fetched + 1

    assert run(MemoryLog(), flow) == 42


def test_sleep_suspends_then_completes_once_due() -> None:
    log = MemoryLog()

    def flow(ctx: WorkflowContext) -> str:
        ctx.sleep(10)
        return "up"

    with pytest.raises(SuspendSignal):
        run(log, flow)
    with pytest.raises(SuspendSignal):  # woken early: waits on, writes nothing
        writes = log.writes
        run(log, flow)
    assert log.writes == writes
    CLOCK.advance(10)
    assert run(log, flow) == "up"


def test_wait_event_takes_a_stored_event_and_a_later_one_for_a_second_wait() -> None:
    log = MemoryLog()
    log.events = [(1, "k", "first"), (2, "other", "x"), (3, "k", "second")]
    assert run(log, lambda ctx: [ctx.wait_event("k"), ctx.wait_event("k")]) == [
        "first", "second"]
    assert run(log, lambda ctx: [ctx.wait_event("k"), ctx.wait_event("k")]) == [
        "first", "second"]  # replayed


def test_async_steps_work_from_a_thread_that_runs_an_event_loop() -> None:
    import asyncio
    import threading

    async def fetch() -> int:
        await asyncio.sleep(0)
        return 1

    async def inside_a_loop() -> Any:
        return run(MemoryLog(), lambda ctx: ctx.step("f", fetch))

    out: list[Any] = []  # a fresh thread hosts the loop, whatever this one runs
    host = threading.Thread(target=lambda: out.append(asyncio.run(inside_a_loop())))
    host.start()
    host.join()
    assert out == [1]


def test_in_checkpoint_writes_with_the_checkpoint_once_never_on_replay() -> None:
    log = MemoryLog()
    seen: list[tuple[Any, object]] = []

    def pair(a: int, **kw: Any) -> tuple[int, int]:
        assert kw == {"b": 2}  # in_checkpoint is the engine's, not passed to the step
        return (a, kw["b"])

    def flow(ctx: WorkflowContext) -> Any:
        return ctx.step("pair", pair, 1, b=2, in_checkpoint=lambda v, tx: seen.append((v, tx)))

    assert run(log, flow) == [1, 2]
    assert run(log, flow) == [1, 2]  # replayed: neither the step nor the write runs again
    assert seen == [((1, 2), log.tx)]  # the step's own value, in the checkpoint's transaction


def test_a_failing_in_checkpoint_fails_the_step_and_checkpoints_nothing() -> None:
    log = MemoryLog()
    runs: list[int] = []
    refuse = [True]

    def write(value: Any, tx: object) -> None:
        if refuse[0]:
            raise ValueError("cap reached")

    def counted() -> int:
        runs.append(1)
        return len(runs)

    def flow(ctx: WorkflowContext) -> Any:
        return ctx.step("s", counted, in_checkpoint=write)

    with pytest.raises(ValueError, match="cap reached"):
        run(log, flow)
    failed = log.steps[0]
    assert failed.status is StepStatus.FAILED and failed.error is not None
    assert "cap reached" in failed.error.message
    refuse[0] = False
    assert run(log, flow) == 2 and log.steps[0].status is StepStatus.COMPLETED
