"""What an enqueue hands back for each job: its id, whether the call created it, and
its record (ADR 0032).

Kept apart from the request and the record it is built from (``NewJob``, ``Job`` in
``core/job.py``), which stays the job itself: this is the answer of one call, with its
own rule for when the record is built. It needs them only as types, so
``treadle.core.job`` imports it and re-exports it for older imports without a cycle.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from treadle.core.job import Job, NewJob


class Enqueued:
    """One job handed back by an enqueue: its ``id``, whether this call ``created`` it
    (False when an idempotency key matched an existing job) and its record, ``job``.

    A job this call created keeps its request and builds its record on first read
    (ADR 0032): most producers keep the id alone, and decoding the payload back and
    setting the record's ~25 fields cost a sixth of a ``defer``. The request is frozen
    and its stored JSON is what the record decodes, so building it later gives the same
    record as building it at once. Read-only, compared by record and ``created``."""

    __slots__ = ("_created", "_created_at", "_id", "_job", "_request", "_run_at")

    def __init__(self, job: Job, created: bool) -> None:
        self._job: Job | None = job
        self._id = job.id
        self._created = created
        self._request: NewJob | None = None
        self._created_at: datetime | None = None
        self._run_at: datetime | None = None

    @classmethod
    def new(cls, request: NewJob, job_id: int, created_at: datetime,
            run_at: datetime | None = None) -> Enqueued:
        """A job just inserted as ``job_id`` from ``request``: its record, when read, is
        ``request.stored(job_id, created_at, run_at)``; ``run_at`` None means
        ``created_at`` (a request without a start time)."""
        out = cls.__new__(cls)
        out._job = None
        out._id = job_id
        out._created = True
        out._request = request
        out._created_at = created_at
        out._run_at = run_at
        return out

    @property
    def id(self) -> int:
        return self._id

    @property
    def created(self) -> bool:
        return self._created

    @property
    def job(self) -> Job:
        job = self._job
        if job is None:  # built once; two threads racing here build equal records
            assert self._request is not None and self._created_at is not None
            job = self._request.stored(self._id, self._created_at,
                                       self._run_at or self._created_at)
            self._job = job
        return job

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Enqueued):
            return NotImplemented
        return (self.job, self._created) == (other.job, other._created)

    __hash__ = None  # type: ignore[assignment]  # as before: a Job (its payload dict) has none

    def __repr__(self) -> str:
        return f"Enqueued(job={self.job!r}, created={self._created!r})"
