"""Backend-neutral parameters of a guarded ``finish`` update."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from treadle.core import storable
from treadle.core.errors import ErrorInfo, InvalidOutput
from treadle.core.outcome import Outcome, OutcomeKind

# Released, continued and suspended attempts do not use up the job's retry budget.
_FREE_ATTEMPT = frozenset({OutcomeKind.RELEASED, OutcomeKind.CONTINUED, OutcomeKind.WAITING})


def storable_outcome(outcome: Outcome) -> Outcome:
    """``outcome`` as it can be written by either store (ADR 0006).

    The last line of defence, whoever built the outcome (the worker checks first): a
    result or continuation payload that cannot be stored turns the outcome into a
    failure classified ``invalid_output``; error text and details are repaired.
    A store must never raise on content: that would stop the thread writing it.
    """
    try:
        if outcome.kind is OutcomeKind.SUCCEEDED:
            storable.check(outcome.result, "result", error=InvalidOutput)
        elif outcome.payload is not None:
            storable.check(outcome.payload, "continuation payload", error=InvalidOutput)
    except InvalidOutput as exc:
        return replace(
            outcome, kind=OutcomeKind.FAILED, result=None, payload=None, run_at=None,
            reason="failed", error=ErrorInfo(exc.error_class, exc.message, exc.detail),
            worker=storable.clean_text(outcome.worker),
        )
    error = outcome.error
    if error is None and storable.is_valid_text(outcome.worker):
        return outcome  # the hot path: a success, nothing to repair
    if error is not None:
        error = ErrorInfo(error.error_class, storable.clean_text(error.message),
                          storable.repair(error.detail), error.retry_after)
    return replace(outcome, error=error, worker=storable.clean_text(outcome.worker))


def storable_lines(lines: Sequence[str]) -> list[str]:
    """Log lines made storable: invalid text replaced, never refused (ADR 0006)."""
    return [storable.clean_text(line if isinstance(line, str) else str(line)) for line in lines]


def finish_params(
    outcome: Outcome, now: datetime, ts: Callable[[datetime], Any], js: Callable[[Any], Any]
) -> dict[str, Any]:
    """Parameters for the ``finish`` query; ``ts``/``js`` encode for the backend."""
    status = outcome.kind.to_status
    run_at = outcome.run_at or (now if status.value == "queued" else None)
    return {
        "id": outcome.job_id,
        "token": outcome.lease_token,
        "status": status.value,
        "result": js(outcome.result) if outcome.kind is OutcomeKind.SUCCEEDED else None,
        "error": js(outcome.error.to_json()) if outcome.error else None,
        "run_at": ts(run_at) if run_at else None,
        "payload": js(outcome.payload) if outcome.payload is not None else None,
        "extra_attempts": 1 if outcome.kind in _FREE_ATTEMPT else 0,
        "finished_at": ts(now) if status.is_terminal else None,
    }


def lease_lost_detail(outcome: Outcome, current_token: int) -> dict[str, Any]:
    return {
        "refused": outcome.kind.value,
        "stale_token": outcome.lease_token,
        "current_token": current_token,
        "worker": outcome.worker,
    }
