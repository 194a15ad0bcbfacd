"""Job handles and job queries: reading and steering jobs that exist.

A handle is what a submission returns; the queries (get, list, explain, progress,
events, logs, cancel, retry, release, discard) read or steer stored jobs by id and
touch nothing else in the app, so they live apart from registration and submission.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from treadle.app_state import AppState
from treadle.core.errors import Timeout
from treadle.core.explain import explain
from treadle.core.job import (
    Enqueued,
    Job,
    JobEvent,
    JobFilter,
    JobLog,
)

if TYPE_CHECKING:
    from treadle.app import Treadle
    from treadle.streams.follow import JobStream


class WaitTimeout(Timeout, TimeoutError):
    """``JobHandle.wait`` ran out of time before the job finished."""


class JobHandle:
    """A reference to an enqueued job."""

    def __init__(self, app: Treadle, job: Job, created: bool = True) -> None:
        self.app = app
        self.id = job.id
        self.created = created
        self._source: Job | Enqueued = job

    @classmethod
    def of(cls, app: Treadle, enqueued: Enqueued) -> JobHandle:
        """The handle of a job an enqueue handed back; its record is built only when
        ``job`` is first read (ADR 0032)."""
        handle = cls.__new__(cls)
        handle.app = app
        handle.id = enqueued.id
        handle.created = enqueued.created
        handle._source = enqueued
        return handle

    @property
    def job(self) -> Job:
        """The job's record as enqueued (``refresh()`` reads it again)."""
        source = self._source
        return source.job if isinstance(source, Enqueued) else source

    @job.setter
    def job(self, job: Job) -> None:  # a newer read of the same job (e.g. after a wait)
        self._source = job

    def __repr__(self) -> str:
        return f"<JobHandle id={self.id} task={self.job.task!r}>"

    def stream(self, *, after: int = 0, poll: float = 0.05) -> JobStream:
        """The job's live stream: iterate (or ``async for``) its state changes, items
        (logs, progress, emitted data) and final record; ``after`` resumes (docs/streams.md)."""
        from treadle.streams.follow import JobStream

        return JobStream(self.app, self.id, after=after, poll=poll)

    def refresh(self) -> Job:
        return self.app.get_job(self.id)

    def wait(self, timeout: float = 30.0) -> Job:
        """Block until the job is finished (succeeded, failed or cancelled); return it."""
        self.app.store.wait_for_finish([self.id], timeout)
        job = self.app.get_job(self.id)
        if not job.is_finished:
            raise WaitTimeout(
                f"job {self.id} not finished after {timeout}s (status {job.status.value})",
                detail={"id": self.id, "status": job.status.value},
            )
        return job



class JobQueries(AppState):
    """The app's job queries and controls, by job id."""

    def get_job(self, job_id: int, *, tenant: str | None = None) -> Job:
        return self.store.get_job(job_id, tenant=tenant)

    def list_jobs(self, flt: JobFilter | None = None) -> list[Job]:
        return self.store.list_jobs(flt or JobFilter())

    def why_not_running(self, job: Job) -> dict[str, Any] | None:
        """For a queued job, the rule that holds it (``{"rule", "message"}``); else None."""
        return explain(self.store, job, self.clock.now())

    def job_progress(self, job_id: int, *, tenant: str | None = None) -> dict[str, Any] | None:
        """The job's latest progress (``{"done", "total", "message"}``) as its worker's
        heartbeats carried it to the stream (ADR 0016); None if it reported none."""
        from treadle.streams.model import PROGRESS
        from treadle.streams.repo import StreamRepo

        self.store.get_job(job_id, tenant=tenant)  # another tenant's job: not found
        repo = StreamRepo(self.store)
        if not repo.available():  # a database without the streams' tables
            return None
        item = repo.latest(job_id, PROGRESS)
        return None if item is None else dict(item.data)

    def job_events(self, job_id: int) -> list[JobEvent]:
        return self.store.events(job_id)

    def job_logs(self, job_id: int) -> list[JobLog]:
        return self.store.logs(job_id)

    def cancel(self, job_id: int, *, tenant: str | None = None) -> Job:
        return self.store.cancel(job_id, tenant=tenant)

    def retry(self, job_id: int, *, tenant: str | None = None) -> Job:
        return self.store.retry(job_id, tenant=tenant)

    def release(self, job_id: int, *, tenant: str | None = None) -> Job:
        """Release a quarantined job: queued again, its crash count reset (ADR 0015)."""
        return self.store.release(job_id, tenant=tenant)

    def discard(self, job_id: int, *, tenant: str | None = None) -> Job:
        """Discard a quarantined job: failed for good (ADR 0015)."""
        return self.store.discard(job_id, tenant=tenant)

