"""The one narrow storage seam every backend implements (ADR 0001).

The values that cross it (outcomes, reap and heartbeat results, filters) live in
``treadle.core`` (shared with the worker); they are re-exported here for older imports.

Every state change of a running job is a *guarded* update: it names the lease
token it holds, and a write with a stale token is refused and recorded as
``lease_lost``. Operations that touch many jobs take batches, so the hot path
(claim many, complete many, enqueue many) costs one transaction per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, LiteralString, Protocol, runtime_checkable

from treadle.core.cron import ScheduleState
from treadle.core.job import Enqueued, Job, JobEvent, JobFilter, JobLog, NewJob, QueueInfo
from treadle.core.lease import HeartbeatResult, ReapResult, WorkerInfo
from treadle.core.outcome import Outcome, OutcomeKind

if TYPE_CHECKING:
    from treadle.store.groupcommit import Guard

__all__ = [
    "Enqueued",
    "HeartbeatResult",
    "JobFilter",
    "Outcome",
    "OutcomeKind",
    "Parking",
    "ReapResult",
    "Store",
    "Transaction",
    "WorkerInfo",
]


@dataclass(frozen=True)
class Parking:
    """What a worker about to wait tells its store, so that an enqueue may hand it a job
    directly (ADR 0034): its free slots and what it serves. A store that cannot hand
    off ignores it."""

    worker: str
    free: int
    queues: Sequence[str] | None
    kinds: Sequence[str] | None
    lease_seconds: float


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

    # producers: concurrent callers' jobs share one commit (ADR 0019); ``guard`` runs in
    # that transaction first and may refuse its own submission alone.
    def enqueue(
        self, jobs: Sequence[NewJob], *, guard: Guard | None = None
    ) -> list[Enqueued]: ...
    def submit(
        self, jobs: Sequence[NewJob], *, guard: Guard | None = None
    ) -> Future[list[Enqueued]]: ...
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
        # True: at most one suspect (a job whose worker died under it), to run alone;
        # False: only jobs that are not suspects (ADR 0024).
        suspect: bool = False,
    ) -> list[Job]: ...
    def heartbeat(
        self, *, worker: str, leases: Sequence[tuple[int, int]], lease_seconds: float
    ) -> HeartbeatResult: ...
    def complete(self, outcomes: Sequence[Outcome]) -> list[bool]: ...
    def add_logs(self, job_id: int, attempt: int, lines: Sequence[str]) -> None: ...
    # ``park``: hand-offs (ADR 0034); jobs handed are taken with take_handed, each once,
    # and unpark ends them (returning what was handed meanwhile, still to release).
    def wait_for_work(self, timeout: float, park: Parking | None = None) -> bool: ...
    def take_handed(self, worker: str) -> list[Job]: ...
    def unpark(self, worker: str) -> list[Job]: ...
    def wait_for_finish(self, job_ids: Sequence[int], timeout: float) -> None: ...
    def interrupt(self) -> None: ...

    # maintenance
    def reap(self, *, limit: int = 500) -> ReapResult: ...
    # worker liveness (ADR 0018): a dead worker's jobs run again without waiting for leases
    def register_worker(self, worker: str) -> bool: ...
    def unregister_worker(self, worker: str) -> None: ...
    def reap_dead(self, *, limit: int = 500) -> ReapResult: ...
    # isolation after a crash (ADR 0024): an idle worker's look for suspects
    def suspect_waiting(
        self, *, queues: Sequence[str] | None, kinds: Sequence[str] | None = None
    ) -> bool: ...

    # control
    def get_job(self, job_id: int, *, tenant: str | None = None) -> Job: ...
    def list_jobs(self, flt: JobFilter) -> list[Job]: ...
    def count_by_status(self, *, tenant: str | None = None) -> dict[str, int]: ...
    def cancel(self, job_id: int, *, tenant: str | None = None) -> Job: ...
    def retry(self, job_id: int, *, tenant: str | None = None) -> Job: ...
    # poison-job quarantine (ADR 0015)
    def release(self, job_id: int, *, tenant: str | None = None) -> Job: ...
    def discard(self, job_id: int, *, tenant: str | None = None) -> Job: ...
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
    def worker_processes(self) -> list[WorkerInfo]: ...

    # flow control (ADR 0010)
    def schedule_states(self) -> dict[str, ScheduleState]: ...
    def set_schedule_paused(self, name: str, paused: bool) -> None: ...
    def schedule_fired(self, name: str, fire: datetime) -> None: ...
    def set_tenant_weight(self, tenant: str, weight: int) -> None: ...
    def tenant_weights(self) -> dict[str, int]: ...
    def set_retention(self, queue: str, seconds: float | None) -> None: ...
    def prune(self, *, limit: int = 500, older_than: float | None = None) -> int: ...
    def running_with_key(self, key: str) -> int: ...
    def started_in_window(self, key: str, period: float) -> int: ...
    def next_lease_expiry(self) -> datetime | None: ...
    def lease_due_in(self) -> float | None: ...
    def queued_ahead_in_tenant(self, job: Job) -> int: ...
