"""``ctx`` of a workflow: the replay engine (ADR 0009).

A workflow function is re-run from the top on every attempt (after a crash, a retry or a
wake-up). Each ``ctx`` call is one step at the next position (``seq``): a step already
completed returns its stored result without running; the first unfinished one runs. The
code between steps must be deterministic; the engine checks the one thing it can, that
every position holds the same step name and kind as before, and fails the job permanently
(``NonDeterministic``) when it does not.

The steps that make child jobs (``map``, ``spawn``) are a mixin of ``WorkflowContext`` in
``workflows/children.py``; their names are re-exported here for older imports.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import json
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from treadle.artifacts.context import JobArtifacts
from treadle.context import JobContext
from treadle.core import storable
from treadle.core.classify import classify
from treadle.core.clock import Clock
from treadle.core.errors import InvalidInput, TreadleError
from treadle.core.job import validate_name
from treadle.store.base import Transaction
from treadle.task import MAX_DELAY
from treadle.workflows.children import COLLECT, FAIL_FAST, ChildFactory, ChildSteps
from treadle.workflows.log import StepLog
from treadle.workflows.model import (
    DuplicateStep,
    NonDeterministic,
    Step,
    StepKind,
    StepResultNotJson,
    StepStatus,
    SuspendSignal,
)
from treadle.workflows.timer import TIMERS

__all__ = [
    "COLLECT",
    "FAIL_FAST",
    "MAX_STEP_RESULT_BYTES",
    "STEP_START_GRACE",
    "CheckpointWrite",
    "ChildFactory",
    "WorkflowContext",
    "current_step_key",
]

T = TypeVar("T")
# (a step's result, the open transaction that checkpoints it) -> more writes in it.
CheckpointWrite = Callable[[Any, Transaction], None]

MAX_STEP_RESULT_BYTES = 16 << 20  # a step result above this is refused (stored apart above 64 KiB)
STEP_START_GRACE = 0.5  # seconds a step runs before its start is written on its own

_step_key: contextvars.ContextVar[str | None] = contextvars.ContextVar("treadle_step_key",
                                                                       default=None)


def current_step_key() -> str | None:
    """The idempotency key of the step running now (inside ``ctx.step``), else None.

    Stable across attempts and replays: pass it to an outside system to make the step's
    effect exactly-once even though the step itself is at-least-once."""
    return _step_key.get()


class WorkflowContext(ChildSteps):
    """Passed as the first argument of a workflow function."""

    def __init__(
        self, job_ctx: JobContext, log: StepLog, clock: Clock, make_child: ChildFactory
    ) -> None:
        self.job_ctx = job_ctx
        self.job = job_ctx.job
        self._log = log
        self._clock = clock
        self._make_child = make_child
        self._stored = {s.seq: s for s in log.load()}
        self._seq = 0
        self._names: set[str] = set()
        self._broken: TreadleError | None = None  # a determinism error, raised again at the end
        # key -> id of the last event this run received (replayed or new): a second wait
        # on the same key takes a later event.
        self._received: dict[str, int] = {}

    # -- the public API --------------------------------------------------------

    @property
    def job_id(self) -> int:
        return self.job.id

    @property
    def attempt(self) -> int:
        return self.job.attempt

    def idempotency_key(self, name: str) -> str:
        """The stable key of step ``name`` of this job (same on every attempt)."""
        return f"treadle:{self.job.id}:{name}"

    def log(self, message: str) -> None:
        self.job_ctx.log(message)

    @property
    def artifacts(self) -> JobArtifacts:
        """This job's files (``treadle.artifacts``); a put inside a step records the step."""
        return self.job_ctx.artifacts

    def emit(self, kind: str, data: Any = None) -> None:
        """Append an item to the job's live stream (docs/streams.md)."""
        self.job_ctx.emit(kind, data)

    def progress(self, done: float, total: float | None = None,
                 message: str | None = None, *, live: bool = True) -> None:
        self.job_ctx.progress(done, total, message, live=live)

    def watch_progress(self, stall_seconds: float | None) -> AbstractContextManager[None]:
        """Stall detection for a stretch of work (``JobContext.watch_progress``)."""
        return self.job_ctx.watch_progress(stall_seconds)

    def _stream_step(self, seq: int, name: str, state: str) -> None:
        # Live ``step`` items for watchers; replayed steps were streamed by their attempt.
        if self.job_ctx._stream is not None:
            self.job_ctx._stream.step(seq, name, state)

    # An async ``fn`` is awaited: the step's value is what it resolves to, and the first
    # overload says so to a type checker (the second alone would give the coroutine).
    @overload
    def step(self, name: str, fn: Callable[..., Awaitable[T]], /, *args: Any,
             in_checkpoint: CheckpointWrite | None = None, **kwargs: Any) -> T: ...

    @overload
    def step(self, name: str, fn: Callable[..., T], /, *args: Any,
             in_checkpoint: CheckpointWrite | None = None, **kwargs: Any) -> T: ...

    def step(self, name: str, fn: Callable[..., Any], /, *args: Any,
             in_checkpoint: CheckpointWrite | None = None, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` once; its JSON result is checkpointed under ``name``.

        ``in_checkpoint(result, tx)`` (not passed to ``fn``), when given, writes rows of
        the caller's in the store transaction ``tx`` that checkpoints the result: both
        commit or neither (an agent's spending-ledger row). It runs once per checkpoint,
        never on replay; if it raises, the step is not checkpointed and the error is the
        step's."""
        seq, rec = self._next(name, StepKind.STEP)
        if rec is not None and rec.status is StepStatus.COMPLETED:
            return self._stored_result(rec)
        # The start is written with the outcome (one commit per step), or at once by a
        # timer if the step runs longer than STEP_START_GRACE.
        started_at = self._clock.now()
        early = TIMERS.after(STEP_START_GRACE,
                             lambda: self._log.start(seq, name, StepKind.STEP))
        token = _step_key.set(self.idempotency_key(name))
        self._stream_step(seq, name, "started")
        try:
            # A span per step that runs (a replayed one returned above), child of the
            # attempt's run span (ADR 0021).
            with self.job_ctx.span(f"step {name}",
                                   {"treadle.step": name, "treadle.seq": seq}) as span:
                try:
                    value = fn(*args, **kwargs)
                    if inspect.isawaitable(value):
                        value = _run_awaitable(value)
                except Exception as exc:
                    span.fail(f"{type(exc).__name__}")
                    raise
        except Exception as exc:
            self._step_failed(seq, name, exc, None if early.settle() else started_at)
            raise
        except BaseException:
            early.settle()
            raise
        finally:
            _step_key.reset(token)
        unrecorded = None if early.settle() else started_at
        text = self._encode(seq, name, StepKind.STEP, value, started_at=unrecorded)
        if in_checkpoint is None:
            self._log.complete(seq, name, StepKind.STEP, text, started_at=unrecorded)
        else:
            try:
                self._log.complete(seq, name, StepKind.STEP, text, started_at=unrecorded,
                                   also=functools.partial(in_checkpoint, value))
            except Exception as exc:  # rolled back with the checkpoint: the step failed
                self._step_failed(seq, name, exc, unrecorded)
                raise
        self._stream_step(seq, name, "completed")
        # The first run sees what a replay will see (tuples become lists, and so on).
        return json.loads(text)

    def _step_failed(self, seq: int, name: str, exc: Exception,
                     unrecorded: datetime | None) -> None:
        self._log.fail(seq, name, StepKind.STEP, classify(exc), started_at=unrecorded)
        self._stream_step(seq, name, "failed")

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` without holding a worker slot (the job is ``waiting``)."""
        seconds = _wait_seconds("sleep", seconds)
        name = f"sleep@{self._seq}"
        seq, rec = self._next(name, StepKind.SLEEP)
        if rec is not None and rec.status is StepStatus.COMPLETED:
            return
        now = self._clock.now()
        if rec is None or rec.status is not StepStatus.WAITING or rec.wake_at is None:
            if seconds <= 0:
                self._log.complete(seq, name, StepKind.SLEEP, "null")
                return
            self._log.wait(seq, name, StepKind.SLEEP, wake_at=now + timedelta(seconds=seconds))
            raise SuspendSignal
        if now >= rec.wake_at:
            self._log.complete(seq, name, StepKind.SLEEP, "null")
            return
        raise SuspendSignal  # woken early (a sweep's clock ran ahead): wait on

    def wait_event(self, key: str, timeout: float | None = None) -> Any:
        """The payload of the next event sent with ``key``, or None after ``timeout`` s.

        Events are stored: one sent after this job was created but before it got here
        is received. Waiting twice on one key receives two different events."""
        # The rules of send_event's key: a key no event can be sent with would wait
        # forever (or, unstorable, fail the step as if the store were down).
        validate_name("event key", key)
        if timeout is not None:
            timeout = _wait_seconds("wait_event timeout", timeout)
        name = f"wait_event@{self._seq}"
        seq, rec = self._next(name, StepKind.EVENT)
        if rec is not None and rec.status is StepStatus.COMPLETED:
            if rec.event_id is not None:
                self._received[key] = rec.event_id
            return self._stored_result(rec)
        after = self._received.get(key, 0)
        found = self._log.find_event(key, after)
        if found is not None:
            event_id, payload = found
            text = json.dumps(payload, allow_nan=False)
            self._log.complete(seq, name, StepKind.EVENT, text, event_key=key,
                               event_id=event_id)
            self._received[key] = event_id
            return json.loads(text)
        now = self._clock.now()
        if rec is not None and rec.status is StepStatus.WAITING:
            if rec.wake_at is not None and now >= rec.wake_at:
                self._log.complete(seq, name, StepKind.EVENT, "null", event_key=key)
                return None
            raise SuspendSignal
        wake_at = now + timedelta(seconds=timeout) if timeout is not None else None
        if timeout is not None and timeout <= 0:
            self._log.complete(seq, name, StepKind.EVENT, "null", event_key=key)
            return None
        self._log.wait(seq, name, StepKind.EVENT, wake_at=wake_at, event_key=key,
                       event_after=after)
        raise SuspendSignal

    # -- the engine ------------------------------------------------------------

    def _next(self, name: str, kind: StepKind) -> tuple[int, Step | None]:
        if self._broken is not None:
            raise self._broken
        self.job_ctx.check()  # a cancel request or a spent budget stops at a step boundary
        validate_name("step name", name)
        if name in self._names:
            raise DuplicateStep(f"step name {name!r} is used twice in one run of the workflow",
                                detail={"step": name})
        self._names.add(name)
        seq = self._seq
        self._seq += 1
        rec = self._stored.get(seq)
        if rec is not None and (rec.name != name or rec.kind is not kind):
            self._broken = NonDeterministic(
                f"workflow is not deterministic: step #{seq} was {rec.kind.value} "
                f"{rec.name!r} in an earlier run, now {kind.value} {name!r}",
                detail={"seq": seq, "stored": rec.name, "now": name},
            )
            raise self._broken
        return seq, rec

    def finish(self) -> None:
        """Called after the function returned: any divergence seen is fatal, and so is
        returning before the steps an earlier run had already reached."""
        if self._broken is not None:
            raise self._broken
        unreached = sorted(s for s in self._stored if s >= self._seq)
        if unreached:
            first = self._stored[unreached[0]]
            raise NonDeterministic(
                f"workflow is not deterministic: it returned after {self._seq} steps, but an "
                f"earlier run had reached step #{first.seq} {first.name!r}",
                detail={"seq": first.seq, "stored": first.name},
            )

    def _stored_result(self, rec: Step) -> Any:
        if rec.result_ref is not None:
            return self._log.load_result(rec.result_ref)
        return rec.result

    def _encode(self, seq: int, name: str, kind: StepKind, value: Any, *,
                started_at: datetime | None = None) -> str:
        try:
            # Storable: JSON that both stores keep exactly (no NUL, finite numbers, ...).
            storable.check(value, f"the result of step {name!r}", error=StepResultNotJson)
            text = json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, StepResultNotJson) as exc:
            err = exc if isinstance(exc, StepResultNotJson) else StepResultNotJson(
                f"step {name!r} returned a value that is not JSON: {exc}")
            err.detail = {"step": name, **(err.detail or {})}
            self._log.fail(seq, name, kind, classify(err), started_at=started_at)
            raise err from None
        if len(text) > MAX_STEP_RESULT_BYTES:
            err = StepResultNotJson(
                f"step {name!r} returned {len(text)} bytes of JSON; the limit is "
                f"{MAX_STEP_RESULT_BYTES}", detail={"step": name})
            self._log.fail(seq, name, kind, classify(err), started_at=started_at)
            raise err
        return text


def _wait_seconds(what: str, seconds: object) -> float:
    """Seconds a workflow waits: a finite number up to :data:`MAX_DELAY` (none or less
    than none is no wait). Anything else cannot become a wake time: refused, not retried."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) \
            or not seconds <= MAX_DELAY or seconds != seconds:
        raise InvalidInput(f"{what} must be a number of seconds up to {MAX_DELAY:.0f}")
    return max(0.0, float(seconds))


async def _awaited(value: Any) -> Any:
    return await value


def _run_awaitable(value: Any) -> Any:
    """Await an async step's result from sync workflow code. Worker threads have no event
    loop; a thread that runs one (a test, an embedding app) gets a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_awaited(value))
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = asyncio.run(_awaited(value))
        except BaseException as exc:  # handed back to the step's thread
            out["error"] = exc

    helper = threading.Thread(target=run, name="treadle-wf-async-step")
    helper.start()
    helper.join()
    if "error" in out:
        raise out["error"]
    return out["value"]
