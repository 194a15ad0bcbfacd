"""From what an attempt returned or raised to the outcome the store records."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from treadle.context import Continue, Suspend
from treadle.core.classify import classify
from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.errors import ErrorClass, InvalidInput
from treadle.core.job import Job
from treadle.core.retry import decide
from treadle.executors.base import Runnable
from treadle.store import Outcome, OutcomeKind

MAX_RESULT_BYTES = 1 << 20


def outcome_for_result(job: Job, result: Any, runnable: Runnable, worker: str) -> Outcome:
    try:
        size = len(json.dumps(result, allow_nan=False))
    except (TypeError, ValueError) as exc:
        err = InvalidInput(f"task result is not JSON-serialisable: {exc}")
        return outcome_for_error(job, err, runnable, worker)
    if size > MAX_RESULT_BYTES:
        err = InvalidInput(f"task result is {size} bytes; the limit is {MAX_RESULT_BYTES}")
        return outcome_for_error(job, err, runnable, worker)
    return Outcome(job.id, job.lease_token, OutcomeKind.SUCCEEDED, worker, result=result)


def outcome_for_error(
    job: Job, exc: BaseException, runnable: Runnable, worker: str, clock: Clock = SYSTEM_CLOCK
) -> Outcome:
    """Classify, then let the retry policy decide: retry later, or fail now."""
    if isinstance(exc, Continue):
        return Outcome(job.id, job.lease_token, OutcomeKind.CONTINUED, worker,
                       payload=exc.payload)
    if isinstance(exc, Suspend):
        return Outcome(job.id, job.lease_token, OutcomeKind.WAITING, worker)
    info = classify(exc, runnable.error_overrides, default=runnable.default_error_class)
    if info.error_class is ErrorClass.CANCELLED:
        return Outcome(job.id, job.lease_token, OutcomeKind.CANCELLED, worker, error=info)
    decision = decide(info, job.attempt, job.max_attempts, runnable.retry_policy)
    if decision.retry:
        return Outcome(
            job.id, job.lease_token, OutcomeKind.RETRY, worker, error=info,
            run_at=clock.now() + timedelta(seconds=decision.delay),
        )
    reason = "attempts_exhausted" if decision.reason == "attempts_exhausted" else "failed"
    if info.error_class is ErrorClass.TIMEOUT and reason == "failed":
        reason = "timeout"
    return Outcome(job.id, job.lease_token, OutcomeKind.FAILED, worker, error=info,
                   reason=reason)
