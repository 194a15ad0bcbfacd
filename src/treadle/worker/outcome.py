"""From what an attempt returned or raised to the outcome the store records."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from treadle.context import Continue, Suspend
from treadle.core import storable
from treadle.core.classify import classify
from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.errors import ErrorClass, ErrorInfo, InvalidOutput
from treadle.core.job import Job
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.core.retry import decide
from treadle.core.usage import Usage, encoded_size
from treadle.executors.base import Runnable

MAX_RESULT_BYTES = 1 << 20


def outcome_for_result(job: Job, result: Any, runnable: Runnable, worker: str) -> Outcome:
    """Success, unless the result cannot be stored: then that job fails as
    ``invalid_output`` (never retried) and the worker carries on (ADR 0006)."""
    try:
        storable.check(result, "result", error=InvalidOutput)
        size = encoded_size(result)  # measured once: the limit and the usage row (ADR 0022)
        if size > MAX_RESULT_BYTES:
            raise InvalidOutput(f"result is {size} bytes; the limit is {MAX_RESULT_BYTES}",
                                detail={"bytes": size, "limit": MAX_RESULT_BYTES})
    except InvalidOutput as err:
        return outcome_for_error(job, err, runnable, worker)
    return Outcome(job.id, job.lease_token, OutcomeKind.SUCCEEDED, worker, result=result,
                   usage=Usage(result_bytes=size))


def outcome_for_error(
    job: Job, exc: BaseException, runnable: Runnable, worker: str, clock: Clock = SYSTEM_CLOCK
) -> Outcome:
    """Classify, then let the retry policy decide: retry later, or fail now."""
    if isinstance(exc, Continue):
        try:
            payload = storable.check(exc.payload, "continuation payload", error=InvalidOutput,
                                     max_bytes=MAX_RESULT_BYTES)
        except InvalidOutput as err:
            return outcome_for_error(job, err, runnable, worker, clock)
        if not isinstance(payload, dict):
            bad = InvalidOutput("continuation payload must be a JSON object")
            return outcome_for_error(job, bad, runnable, worker, clock)
        return Outcome(job.id, job.lease_token, OutcomeKind.CONTINUED, worker, payload=payload)
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


def outcome_for_crash(job: Job, exc: BaseException, worker: str) -> Outcome:
    """The worker itself failed while handling this attempt (not the task): fail the job,
    classified ``invalid_output`` and never retried, built without touching anything the
    attempt produced (that may be what failed). See ADR 0006."""
    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    info = ErrorInfo(
        ErrorClass.INVALID_OUTPUT,
        f"the worker could not record this attempt's outcome ({type(exc).__name__})",
        {"type": kind},
    )
    return Outcome(job.id, job.lease_token, OutcomeKind.FAILED, worker, error=info,
                   reason="failed")
