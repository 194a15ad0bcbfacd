"""The one narrow storage seam every backend implements (DESIGN §2).

Every state change of a running job is a *guarded* update: it names the lease
token it holds, and a write with a stale token is refused and recorded as
``lease_lost``. Operations that touch many jobs take batches, so the hot path
(claim many, complete many, enqueue many) costs one transaction per batch.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, LiteralString, Protocol, runtime_checkable

from treadle.core.errors import ErrorInfo
from treadle.core.job import Job, JobEvent, JobLog, NewJob, QueueInfo
from treadle.core.lifecycle import JobStatus


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


@dataclass(frozen=True)
class Enqueued:
    job: Job
    created: bool  # False when an idempotency key matched an existing job


@dataclass(frozen=True)
class HeartbeatResult:
    lost: frozenset[int] = frozenset()  # leases this worker no longer holds
    cancel_requested: frozenset[int] = frozenset()


@dataclass(frozen=True)
class ReapResult:
    requeued: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.requeued + self.failed + self.cancelled


@dataclass(frozen=True)
class JobFilter:
    tenant: str | None = None
    statuses: Sequence[JobStatus] = ()
    queue: str | None = None
    task: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    before_id: int | None = None  # cursor: ids strictly below (newest first)
    limit: int = 50


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    started_at: datetime
    last_heartbeat: datetime
    info: dict[str, Any] = field(default_factory=dict)


class Transaction(Protocol):
    """An open write transaction: a plug-in's statements and new jobs commit together."""

    def execute(self, sql: LiteralString, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        ...

    def enqueue(self, jobs: Sequence[NewJob]) -> list[Enqueued]: ...


@runtime_checkable
class Store(Protocol):
    """Persistence of jobs, events, logs, queues and workers."""

    url: str

    # schema
    def migrate(self) -> list[int]: ...
    def check_schema(self) -> None: ...
    # a job-kind plug-in's own migrations: <sql_package>.<backend>.migrations
    def migrate_plugin(self, plugin: str, sql_package: str) -> list[int]: ...
    def check_plugin_schema(self, plugin: str, sql_package: str) -> None: ...
    def close(self) -> None: ...

    # producers
    def enqueue(self, jobs: Sequence[NewJob]) -> list[Enqueued]: ...
    def transaction(self) -> AbstractContextManager[Transaction]: ...

    # workers (hot path)
    def claim(
        self,
        *,
        queues: Sequence[str] | None,
        worker: str,
        limit: int,
        lease_seconds: float,
        kinds: Sequence[str] | None = None,  # None: every kind
    ) -> list[Job]: ...
    def heartbeat(
        self, *, worker: str, leases: Sequence[tuple[int, int]], lease_seconds: float
    ) -> HeartbeatResult: ...
    def complete(self, outcomes: Sequence[Outcome]) -> list[bool]: ...
    def add_logs(self, job_id: int, attempt: int, lines: Sequence[str]) -> None: ...
    def wait_for_work(self, timeout: float) -> bool: ...
    def wait_for_finish(self, job_ids: Sequence[int], timeout: float) -> None: ...
    def interrupt(self) -> None: ...

    # maintenance
    def reap(self, *, limit: int = 500) -> ReapResult: ...

    # control
    def get_job(self, job_id: int, *, tenant: str | None = None) -> Job: ...
    def list_jobs(self, flt: JobFilter) -> list[Job]: ...
    def count_by_status(self, *, tenant: str | None = None) -> dict[str, int]: ...
    def cancel(self, job_id: int, *, tenant: str | None = None) -> Job: ...
    def retry(self, job_id: int, *, tenant: str | None = None) -> Job: ...
    def events(self, job_id: int) -> list[JobEvent]: ...
    def logs(self, job_id: int) -> list[JobLog]: ...
    def set_queue(
        self,
        name: str,
        *,
        paused: bool | None = None,
        concurrency_limit: int | None = None,
        clear_limit: bool = False,
    ) -> QueueInfo: ...
    def queues(self) -> list[QueueInfo]: ...
    def workers(self) -> list[WorkerInfo]: ...
