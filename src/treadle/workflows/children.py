"""The steps that make child jobs: ``ctx.map`` and ``ctx.spawn``, and their fan-in
(ADR 0009; docs/glossary.md: child job).

A mixin of ``WorkflowContext`` (``workflows/context.py``), kept apart so the replay
engine reads on its own: everything from building a step's child jobs to the results
(or the failure) they hand back is here. It runs on the engine's ``_next``,
``_stored_result`` and ``_encode``, declared below so this part type-checks alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from treadle.context import JobContext
from treadle.core.classify import classify
from treadle.core.errors import ErrorClass, InvalidInput
from treadle.core.job import Job, NewJob
from treadle.workflows.log import StepLog
from treadle.workflows.model import (
    ChildFailed,
    ChildResult,
    ChildState,
    Step,
    StepKind,
    StepStatus,
    SuspendSignal,
)

# Builds a child job from (task or task name, payload): the executor binds it to the app.
ChildFactory = Callable[[Any, Mapping[str, Any]], NewJob]

FAIL_FAST, COLLECT = "fail_fast", "collect"


class ChildSteps:
    """``map`` and ``spawn`` of ``WorkflowContext``; see the module docstring."""

    # WorkflowContext's (set in its __init__, or its engine methods).
    job: Job
    job_ctx: JobContext
    _log: StepLog
    _make_child: ChildFactory
    _next: Callable[[str, StepKind], tuple[int, Step | None]]
    _stored_result: Callable[[Step], Any]
    _encode: Callable[..., str]

    def map(
        self, name: str, task: Any, payloads: Iterable[Mapping[str, Any]], *,
        on_error: str = FAIL_FAST,
    ) -> list[Any]:
        """Run ``task`` once per payload as child jobs; wait (without a slot) for them all.

        Returns the results in input order. ``on_error="fail_fast"`` (default): the first
        failed child fails this step with the child's error class. ``"collect"``: wait for
        every child and return :class:`ChildResult` items instead of bare results."""
        if on_error not in (FAIL_FAST, COLLECT):
            raise InvalidInput(f"on_error must be {FAIL_FAST!r} or {COLLECT!r}")
        if not isinstance(payloads, Iterable) or isinstance(payloads, str | bytes | Mapping):
            raise InvalidInput(f"map {name!r}: payloads must be an iterable of dicts")
        seq, rec = self._next(name, StepKind.MAP)
        if rec is not None and rec.status is StepStatus.COMPLETED:
            return self._map_result(self._stored_result(rec), on_error)
        fail_fast = on_error == FAIL_FAST
        if rec is None or rec.status is StepStatus.RUNNING:
            jobs = [self._child_job(task, p, seq, i) for i, p in enumerate(payloads)]
            if not jobs:
                self._log.complete(seq, name, StepKind.MAP, "[]")
                return []
            self._log.spawn(seq, name, StepKind.MAP, jobs, fail_fast=fail_fast, completed=False)
            raise SuspendSignal
        if rec.status is StepStatus.FAILED:
            # A retry of the workflow resumes here: run the failed children again.
            self._log.retry_children(seq)
            self._log.wait(seq, name, StepKind.MAP, fail_fast=fail_fast)
            raise SuspendSignal
        return self._map_result(self._fan_in(rec, fail_fast), on_error)

    def spawn(self, name: str, task: Any, payload: Mapping[str, Any], *,
              wait: bool = True) -> Any:
        """One child job. ``wait=True``: suspend until it finishes and return its result
        (its failure fails this step); ``wait=False``: return its job id at once."""
        seq, rec = self._next(name, StepKind.SPAWN)
        if rec is not None and rec.status is StepStatus.COMPLETED:
            return self._stored_result(rec)
        if rec is None or rec.status is StepStatus.RUNNING:
            job = self._child_job(task, payload, seq, 0)
            if not wait:  # the checkpoint is the child's id
                return self._log.spawn(seq, name, StepKind.SPAWN, [job], fail_fast=True,
                                       completed=True)[0]
            self._log.spawn(seq, name, StepKind.SPAWN, [job], fail_fast=True, completed=False)
            raise SuspendSignal
        if rec.status is StepStatus.FAILED:
            self._log.retry_children(seq)
            self._log.wait(seq, name, StepKind.SPAWN)
            raise SuspendSignal
        return self._fan_in(rec, True)[0]

    def _child_job(self, task: Any, payload: Mapping[str, Any], seq: int, idx: int) -> NewJob:
        job = self._make_child(task, payload)
        # The key makes the child unique per (parent, step, index) on top of the
        # transaction that writes it with the checkpoint.
        # A child continues the workflow's trace, from the span current now (ADR 0021).
        trace = self.job_ctx._tracing.current_traceparent() if self.job_ctx._tracing else None
        return replace(job, parent_id=self.job.id, tenant=self.job.tenant,
                       idempotency_key=f"treadle.wf:{self.job.id}:{seq}:{idx}",
                       traceparent=trace or self.job.traceparent)

    def _fan_in(self, rec: Step, fail_fast: bool) -> list[Any]:
        seq, name, kind = rec.seq, rec.name, rec.kind
        states = self._log.children(seq)
        if (any(c.status == "cancelled" for c in states) and rec.started_at is not None
                and self._log.retried_after_cancel(rec.started_at)):
            # The workflow was cancelled while it waited (its children with it) and then
            # retried: resume by running those children again, not by failing on them.
            self._log.retry_children(seq)
            self._log.wait(seq, name, kind, fail_fast=fail_fast)
            raise SuspendSignal
        failed = [c for c in states if c.finished and not c.ok]
        if fail_fast and failed:
            self._child_failed(seq, name, kind, failed[0])
        if not all(c.finished for c in states):
            raise SuspendSignal  # woken early: wait on
        if fail_fast:
            out: list[Any] = [c.result for c in states]
        else:
            out = [ChildResult(c.id, c.ok, c.result, c.error).to_json() for c in states]
        text = self._encode(seq, name, kind, out)
        self._log.complete(seq, name, kind, text)
        return json.loads(text)  # type: ignore[no-any-return]

    def _child_failed(self, seq: int, name: str, kind: StepKind, child: ChildState) -> None:
        err = child.error
        cls = err.error_class if err is not None else None
        exc = ChildFailed(
            f"step {name!r}: child job {child.id} (#{child.idx}) {child.status}"
            + (f": {err.message}" if err else ""),
            cls or ErrorClass.CANCELLED,
            detail={"step": name, "child": child.id, "index": child.idx},
        )
        self._log.fail(seq, name, kind, classify(exc))
        raise exc

    @staticmethod
    def _map_result(stored: Any, on_error: str) -> list[Any]:
        if on_error == COLLECT:
            return [ChildResult.from_json(item) for item in stored]
        return list(stored)
