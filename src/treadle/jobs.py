"""Job handles and job queries: reading and steering jobs that exist.

A handle is what a submission returns; the queries (get, list, explain, progress,
events, logs, cancel, retry, release, discard) read or steer stored jobs by id and
touch nothing else in the app, so they live apart from registration and submission.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from treadle.app_state import AppState
from treadle.core.errors import InvalidInput, JobNotFound, Timeout
from treadle.core.explain import explain
from treadle.core.job import (
    Enqueued,
    Job,
    JobEvent,
    JobFilter,
    JobLog,
    validate_name,
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

        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise InvalidInput("after must be a stream item's number (an integer >= 0)")
        if isinstance(poll, bool) or not isinstance(poll, int | float) \
                or not 0 < poll <= 60:  # NaN too: a sleep of NaN raises mid-stream
            raise InvalidInput("poll must be a number of seconds above 0 and at most 60")
        return JobStream(self.app, self.id, after=after, poll=poll)

    def refresh(self) -> Job:
        return self.app.get_job(self.id)

    def wait(self, timeout: float = 30.0) -> Job:
        """Block until the job is finished (succeeded, failed or cancelled); return it."""
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) \
                or timeout != timeout:  # NaN: the store's wait would never end
            raise InvalidInput("timeout must be a number of seconds")
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
        return self.store.get_job(checked_job_id(job_id, tenant), tenant=tenant)

    def list_jobs(self, flt: JobFilter | None = None) -> list[Job]:
        if flt is not None and not isinstance(flt, JobFilter):
            raise InvalidInput("list_jobs takes a JobFilter")
        flt = flt or JobFilter()
        flt.check_names()  # a name no job can have: refused, not raised by the driver
        return self.store.list_jobs(flt)

    def why_not_running(self, job: Job) -> dict[str, Any] | None:
        """For a queued job, the rule that holds it (``{"rule", "message"}``); else None."""
        if not isinstance(job, Job):
            raise InvalidInput("why_not_running takes a Job, e.g. app.get_job(job_id)")
        return explain(self.store, job, self.clock.now())

    def job_progress(self, job_id: int, *, tenant: str | None = None) -> dict[str, Any] | None:
        """The job's latest progress (``{"done", "total", "message"}``) as its worker's
        heartbeats carried it to the stream (ADR 0016); None if it reported none."""
        from treadle.streams.model import PROGRESS
        from treadle.streams.repo import StreamRepo

        # Another tenant's job: not found.
        self.store.get_job(checked_job_id(job_id, tenant), tenant=tenant)
        repo = StreamRepo(self.store)
        if not repo.available():  # a database without the streams' tables
            return None
        item = repo.latest(job_id, PROGRESS)
        return None if item is None else dict(item.data)

    def job_events(self, job_id: int) -> list[JobEvent]:
        return self.store.events(checked_job_id(job_id))

    def job_logs(self, job_id: int) -> list[JobLog]:
        return self.store.logs(checked_job_id(job_id))

    def cancel(self, job_id: int, *, tenant: str | None = None) -> Job:
        return self.store.cancel(checked_job_id(job_id, tenant), tenant=tenant)

    def retry(self, job_id: int, *, tenant: str | None = None) -> Job:
        return self.store.retry(checked_job_id(job_id, tenant), tenant=tenant)

    def release(self, job_id: int, *, tenant: str | None = None) -> Job:
        """Release a quarantined job: queued again, its crash count reset (ADR 0015)."""
        return self.store.release(checked_job_id(job_id, tenant), tenant=tenant)

    def discard(self, job_id: int, *, tenant: str | None = None) -> Job:
        """Discard a quarantined job: failed for good (ADR 0015)."""
        return self.store.discard(checked_job_id(job_id, tenant), tenant=tenant)


def checked_job_id(job_id: object, tenant: object = None) -> int:
    """The id to look up, for a lookup that can find something: ``True`` is no job id
    (it would be job 1), and neither is text (a lone surrogate raised from the driver);
    no job belongs to a tenant whose name no job can have. Otherwise: not found."""
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise JobNotFound(f"job {job_id!r} not found", detail={"id": repr(job_id)[:40]})
    if tenant is not None:
        try:
            validate_name("tenant", tenant)  # type: ignore[arg-type]
        except InvalidInput:
            raise JobNotFound(f"job {job_id} not found", detail={"id": job_id}) from None
    return job_id
