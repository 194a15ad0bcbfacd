"""The end of an attempt, as a worker reports it and a store records it.

Shared by the worker (which decides), the stores (which apply it under the lease token)
and observers (metrics); pure values, no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from treadle.core.errors import ErrorInfo
from treadle.core.lifecycle import JobStatus
from treadle.core.usage import Usage


class OutcomeKind(enum.StrEnum):
    """What a worker reports about an attempt it ran."""

    SUCCEEDED = "succeeded"  # running -> succeeded
    FAILED = "failed"  # running -> failed
    RETRY = "retry"  # running -> queued, run_at pushed out by backoff
    CANCELLED = "cancelled"  # running -> cancelled (a user asked)
    RELEASED = "released"  # running -> queued at once (graceful shutdown); not counted
    CONTINUED = "continued"  # running -> queued with a new payload; not counted
    WAITING = "waiting"  # running -> waiting: suspended, no lease, no slot; not counted

    @property
    def to_status(self) -> JobStatus:
        return _OUTCOME_STATUS[self]


_OUTCOME_STATUS = {
    OutcomeKind.SUCCEEDED: JobStatus.SUCCEEDED,
    OutcomeKind.FAILED: JobStatus.FAILED,
    OutcomeKind.RETRY: JobStatus.QUEUED,
    OutcomeKind.CANCELLED: JobStatus.CANCELLED,
    OutcomeKind.RELEASED: JobStatus.QUEUED,
    OutcomeKind.CONTINUED: JobStatus.QUEUED,
    OutcomeKind.WAITING: JobStatus.WAITING,
}


@dataclass(frozen=True)
class Outcome:
    """The end of one attempt, fenced by the lease token it ran under."""

    job_id: int
    lease_token: int
    kind: OutcomeKind
    worker: str
    result: Any = None
    error: ErrorInfo | None = None
    run_at: datetime | None = None  # for RETRY
    payload: dict[str, Any] | None = None  # for CONTINUED
    reason: str | None = None  # event reason; defaults per kind
    usage: Usage | None = None  # what the attempt cost, stored with it (ADR 0022)

    @property
    def event_reason(self) -> str:
        if self.reason:
            return self.reason
        return {
            OutcomeKind.SUCCEEDED: "completed",
            OutcomeKind.FAILED: "failed",
            OutcomeKind.RETRY: "retry",
            OutcomeKind.CANCELLED: "cancelled",
            OutcomeKind.RELEASED: "released",
            OutcomeKind.CONTINUED: "continued",
            OutcomeKind.WAITING: "waiting",
        }[self.kind]
