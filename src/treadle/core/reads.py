"""What a store's reads hand back besides the job itself: a job's events and log lines,
a queue's counts, and the filter a listing of jobs takes (their JSON: ADR 0301).

Kept apart from ``core/job.py``, which is the job record and the request that makes it:
these are read-side values that no write builds. ``treadle.core.job`` re-exports them
for older imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from treadle.core.bounds import MAX_JOB_ID, MAX_RUN_AT, MIN_RUN_AT, validate_name
from treadle.core.errors import InvalidInput
from treadle.core.lifecycle import JobStatus


@dataclass(frozen=True)
class JobEvent:
    """One row of the append-only event log: a transition, or a refused write."""

    id: int
    job_id: int
    from_status: JobStatus | None
    to_status: JobStatus
    attempt: int
    worker: str | None
    reason: str
    at: datetime
    detail: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job_id": self.job_id,
            "from_status": self.from_status.value if self.from_status else None,
            "to_status": self.to_status.value,
            "attempt": self.attempt,
            "worker": self.worker,
            "reason": self.reason,
            "at": _iso(self.at),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class JobLog:
    """A line written by user code during one attempt."""

    job_id: int
    attempt: int
    at: datetime
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "attempt": self.attempt,
            "at": _iso(self.at),
            "message": self.message,
        }


# Seconds a finished job (with its events and logs) is kept unless its queue says (ADR 0010).
DEFAULT_RETENTION = 7 * 24 * 3600.0


@dataclass(frozen=True)
class QueueInfo:
    name: str
    paused: bool
    concurrency_limit: int | None
    queued: int = 0
    scheduled: int = 0
    retrying: int = 0
    running: int = 0
    failed_last_hour: int = 0
    succeeded_last_hour: int = 0
    retention_seconds: float = DEFAULT_RETENTION  # how long its finished jobs are kept

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "paused": self.paused,
            "concurrency_limit": self.concurrency_limit,
            "depth": self.queued,
            "scheduled": self.scheduled,
            "retrying": self.retrying,
            "running": self.running,
            "failed_last_hour": self.failed_last_hour,
            "throughput_last_hour": self.succeeded_last_hour,
            "retention_seconds": self.retention_seconds,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class JobFilter:
    """Which jobs to list (newest first); every field narrows."""

    tenant: str | None = None
    statuses: Sequence[JobStatus] = ()
    queue: str | None = None
    task: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    before_id: int | None = None  # cursor: ids strictly below (newest first)
    limit: int = 50

    def __post_init__(self) -> None:
        # Refused here, not raised by a driver (names: JobQueries.list_jobs, by the rules
        # of a job's own, so the CLI and API refuse them with one message).
        statuses = self.statuses
        if isinstance(statuses, str) or not all(isinstance(s, JobStatus) for s in statuses):
            try:
                statuses = tuple(JobStatus(s) for s in (
                    (statuses,) if isinstance(statuses, str) else statuses))
            except (TypeError, ValueError):
                raise InvalidInput("statuses must be job statuses, e.g. JobStatus.FAILED") \
                    from None
            object.__setattr__(self, "statuses", statuses)
        for name in ("created_after", "created_before"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, datetime)
                                          and value.utcoffset() is not None):
                raise InvalidInput(f"{name} must be a timezone-aware datetime")
            if value is not None and not MIN_RUN_AT <= value < MAX_RUN_AT:
                raise InvalidInput(f"{name} must be between 1970 and 9999 (UTC)")
        for name, low in (("before_id", 1), ("limit", 1)):
            value = getattr(self, name)
            if (value is not None or name == "limit") and (
                    isinstance(value, bool) or not isinstance(value, int)
                    or not low <= value <= MAX_JOB_ID):
                raise InvalidInput(f"{name} must be a positive integer")

    def check_names(self) -> None:
        """Refuse a name no job could have (NUL, a lone surrogate, too long)."""
        for what, value in (("tenant", self.tenant), ("queue", self.queue),
                            ("task", self.task)):
            if value is not None:
                validate_name(what, value)
