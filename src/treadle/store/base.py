"""The one narrow storage seam every backend implements (DESIGN §2).

The values that cross it (outcomes, reap and heartbeat results, filters) live in
``treadle.core`` (shared with the worker); they are re-exported here for older imports.

Every state change of a running job is a *guarded* update: it names the lease
token it holds, and a write with a stale token is refused and recorded as
``lease_lost``. Operations that touch many jobs take batches, so the hot path
(claim many, complete many, enqueue many) costs one transaction per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, LiteralString, Protocol, runtime_checkable

from treadle.core.job import Enqueued, Job, JobEvent, JobFilter, JobLog, NewJob, QueueInfo
from treadle.core.lease import HeartbeatResult, ReapResult, WorkerInfo
from treadle.core.outcome import Outcome, OutcomeKind

__all__ = [
    "Enqueued",
    "HeartbeatResult",
    "JobFilter",
    "Outcome",
    "OutcomeKind",
    "ReapResult",
    "Store",
    "Transaction",
    "WorkerInfo",
]


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
