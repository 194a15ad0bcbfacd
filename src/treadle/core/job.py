"""The job record and the values that travel with it (ADR 0002, ADR 0301).

Here: the job's kind, the request that makes a job (``NewJob``) and the row (``Job``)
with its crash history. Beside it, each re-exported here so every name importable from
this module before still is: the name and bound checks a request shares with a listing
(``core/bounds.py``), what an enqueue hands back (``Enqueued``, ``core/enqueued.py``)
and the read side: events, log lines, queue counts, the list filter (``core/reads.py``).
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from treadle.core import storable, traceparent
from treadle.core.bounds import (
    MAX_JOB_ID,
    MAX_NAME_LENGTH,
    MAX_RUN_AT,
    MIN_RUN_AT,
    check_run_at,
    validate_name,
)
from treadle.core.enqueued import Enqueued
from treadle.core.errors import ErrorInfo, InvalidInput
from treadle.core.lifecycle import JobStatus
from treadle.core.reads import DEFAULT_RETENTION, JobEvent, JobFilter, JobLog, QueueInfo

__all__ = [
    "DEFAULT_MAX_CRASHES",
    "DEFAULT_QUEUE",
    "DEFAULT_RETENTION",
    "DEFAULT_TENANT",
    "MAX_JOB_ID",
    "MAX_MAX_CRASHES",
    "MAX_NAME_LENGTH",
    "MAX_RUN_AT",
    "MAX_URL_LENGTH",
    "MIN_RUN_AT",
    "Crash",
    "Enqueued",
    "Job",
    "JobEvent",
    "JobFilter",
    "JobKind",
    "JobLog",
    "NewJob",
    "QueueInfo",
    "check_max_crashes",
    "check_run_at",
    "validate_name",
]

DEFAULT_TENANT = "default"
DEFAULT_QUEUE = "default"
MAX_URL_LENGTH = 2048


class JobKind(enum.StrEnum):
    TASK = "task"
    CODE = "code"
    AGENT = "agent"
    MEDIA = "media"
    WORKFLOW = "workflow"


DEFAULT_MAX_CRASHES = 3
MAX_MAX_CRASHES = 1000


def check_max_crashes(value: object, error: type[Exception]) -> int:
    """``max_crashes``: an integer from 1 to 1000 (``error`` names who refuses it)."""
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 1 <= value <= MAX_MAX_CRASHES:
        raise error(f"max_crashes must be an integer from 1 to {MAX_MAX_CRASHES}")
    return value


@dataclass(frozen=True)
class Crash:
    """One attempt whose worker died under it (the reaper found its lease expired and the
    worker's heartbeats stopped too): part of a job's crash history (ADR 0015)."""

    at: datetime
    worker: str | None
    attempt: int

    def to_json(self) -> dict[str, Any]:
        return {"at": _iso(self.at), "worker": self.worker, "attempt": self.attempt}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Crash:
        return cls(datetime.fromisoformat(data["at"]), data.get("worker"), int(data["attempt"]))


@dataclass(frozen=True)
class NewJob:
    """What a client asks to enqueue. Validated here, before any store sees it."""

    task: str
    payload: dict[str, Any] = field(default_factory=dict)
    queue: str = DEFAULT_QUEUE
    kind: JobKind = JobKind.TASK
    priority: int = 0
    run_at: datetime | None = None
    max_attempts: int = 1
    timeout: float | None = None
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    tenant: str = DEFAULT_TENANT
    parent_id: int | None = None
    callback_url: str | None = None
    # At most this many jobs with concurrency_key run at once (ADR 0010); None: no limit.
    concurrency_limit: int | None = None
    # Set: a rate limit instead, at most concurrency_limit starts per rate_period seconds.
    rate_period: float | None = None
    # A rate limit beside the concurrency limit above (ADR 0010, update): at most
    # rate_limit starts with rate_key per rate_window seconds. None: no second rule.
    rate_key: str | None = None
    rate_limit: int | None = None
    rate_window: float | None = None
    # W3C traceparent the job's spans continue (ADR 0021); only the canonical form.
    traceparent: str | None = None
    # Quarantine after this many attempts whose worker died (ADR 0015); None: the default.
    max_crashes: int | None = None
    # The payload as compact JSON, encoded once here, after the check: what the stores
    # write (ADR 0027) and what a size limit measures. Not an argument: always derived.
    payload_json: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        validate_name("task", self.task)
        validate_name("queue", self.queue)
        validate_name("tenant", self.tenant)
        if type(self.kind) is not JobKind:
            # A plain string was the value of a kind ("task"): take it as that kind.
            # Anything else would reach the store as something it cannot write.
            try:
                object.__setattr__(self, "kind", JobKind(self.kind))
            except ValueError:
                raise InvalidInput(f"kind must be one of {[k.value for k in JobKind]}") from None
        if not isinstance(self.payload, dict):
            raise InvalidInput("payload must be a JSON object")
        # Refused here, before any store sees it: a payload a store cannot hold exactly
        # (lone surrogate, NUL, NaN, too deep, ...) never leaves a row (ADR 0006).
        storable.check(self.payload, "payload")
        object.__setattr__(self, "payload_json", storable.encode(self.payload))
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise InvalidInput("priority must be an integer")
        if not -32768 <= self.priority <= 32767:
            raise InvalidInput("priority must be between -32768 and 32767")
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise InvalidInput("max_attempts must be an integer")
        if not 1 <= self.max_attempts <= 1000:
            raise InvalidInput("max_attempts must be between 1 and 1000")
        if self.timeout is not None and (
            isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float)
            or not 0 < self.timeout <= 7 * 24 * 3600
        ):
            raise InvalidInput("timeout must be a positive number of seconds (at most a week)")
        if self.run_at is not None:
            check_run_at(self.run_at)
        if self.parent_id is not None and (
            isinstance(self.parent_id, bool) or not isinstance(self.parent_id, int)
            or not 1 <= self.parent_id <= MAX_JOB_ID
        ):
            raise InvalidInput("parent_id must be the id of a job (a positive integer)")
        if self.idempotency_key is not None:
            validate_name("idempotency_key", self.idempotency_key)
        if self.concurrency_key is not None:
            validate_name("concurrency_key", self.concurrency_key)
        if self.concurrency_limit is not None:
            if isinstance(self.concurrency_limit, bool) or not isinstance(
                self.concurrency_limit, int
            ) or not 1 <= self.concurrency_limit <= 1_000_000:
                raise InvalidInput("concurrency limit must be an integer from 1 to 1000000")
            if self.concurrency_key is None:
                raise InvalidInput("a concurrency limit needs a concurrency key")
        if self.rate_period is not None and (
            self.concurrency_limit is None or isinstance(self.rate_period, bool)
            or not isinstance(self.rate_period, int | float)
            or not 0.001 <= self.rate_period <= 24 * 3600
        ):
            raise InvalidInput("a rate limit needs a key, a count and a period of 1 ms to 1 day")
        if (self.rate_key, self.rate_limit, self.rate_window) != (None, None, None):
            _check_second_rule(self)
        if self.max_crashes is not None:
            check_max_crashes(self.max_crashes, InvalidInput)
        if self.callback_url is not None and (
            not isinstance(self.callback_url, str)
            or not 0 < len(self.callback_url) <= MAX_URL_LENGTH
            or not self.callback_url.isprintable()
        ):
            raise InvalidInput(
                f"callback_url must be a printable URL of at most {MAX_URL_LENGTH} characters"
            )
        if self.traceparent is not None and traceparent.parse(self.traceparent) != (
            self.traceparent
        ):
            raise InvalidInput("traceparent must be a canonical W3C traceparent (version 00)")

    def with_payload(self, payload: dict[str, Any]) -> NewJob:
        """This request with ``payload`` instead of its own, checked and encoded as the
        constructor would. Every other field was checked when this request was built, so
        only the payload is: a task's ``defer`` builds its requests from one checked once
        (ADR 0032) instead of setting and checking ~20 fields per job."""
        if not isinstance(payload, dict):
            raise InvalidInput("payload must be a JSON object")
        storable.check(payload, "payload")
        out = object.__new__(NewJob)
        fields = out.__dict__
        fields.update(self.__dict__)
        fields["payload"] = payload
        fields["payload_json"] = storable.encode(payload)
        return out

    def stored(self, job_id: int, created_at: datetime, run_at: datetime) -> Job:
        """The row this request becomes once inserted as ``job_id``, built without
        reading it back (ADR 0027). Times are given as the store hands them back;
        numbers get the column types they come back with; the payload is decoded from
        the JSON the store wrote (a copy, as a read gives). What the insert leaves to
        the schema's defaults is set here: a test compares this with the stored row for
        every field, on both stores."""
        return Job(
            id=job_id,
            queue=self.queue,
            kind=self.kind,
            task=self.task,
            payload=json.loads(self.payload_json),
            status=JobStatus.QUEUED,
            priority=self.priority,
            run_at=run_at,
            attempt=0,
            max_attempts=self.max_attempts,
            timeout=None if self.timeout is None else float(self.timeout),
            tenant=self.tenant,
            created_at=created_at,
            idempotency_key=self.idempotency_key,
            concurrency_key=self.concurrency_key,
            parent_id=self.parent_id,
            callback_url=self.callback_url,
            concurrency_limit=self.concurrency_limit,
            rate_period=None if self.rate_period is None else float(self.rate_period),
            rate_key=self.rate_key,
            rate_limit=self.rate_limit,
            rate_window=None if self.rate_window is None else float(self.rate_window),
            traceparent=self.traceparent,
            max_crashes=self.max_crashes or DEFAULT_MAX_CRASHES,
        )


def _check_second_rule(nj: NewJob) -> None:
    """A rate limit stored beside a concurrency limit: all three parts, and only on a job
    whose first rule is a concurrency limit (a rate-only job keeps the 0005 encoding)."""
    if nj.rate_key is None or nj.rate_limit is None or nj.rate_window is None:
        raise InvalidInput("a second rate limit needs a key, a count and a period")
    if nj.concurrency_limit is None or nj.rate_period is not None:
        raise InvalidInput("a second rate limit goes only with a concurrency limit")
    validate_name("rate_key", nj.rate_key)
    if isinstance(nj.rate_limit, bool) or not isinstance(nj.rate_limit, int) \
            or not 1 <= nj.rate_limit <= 1_000_000:
        raise InvalidInput("rate limit must be an integer from 1 to 1000000")
    if isinstance(nj.rate_window, bool) or not isinstance(nj.rate_window, int | float) \
            or not 0.001 <= nj.rate_window <= 24 * 3600:
        raise InvalidInput("a rate limit needs a period of 1 ms to 1 day")


@dataclass(frozen=True)
class Job:
    """A job row as read from the store."""

    id: int
    queue: str
    kind: JobKind
    task: str
    payload: dict[str, Any]
    status: JobStatus
    priority: int
    run_at: datetime
    attempt: int
    max_attempts: int
    timeout: float | None
    tenant: str
    created_at: datetime
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    lease_token: int = 0
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    result: Any = None
    error: ErrorInfo | None = None
    parent_id: int | None = None
    callback_url: str | None = None
    cancel_requested: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None
    concurrency_limit: int | None = None
    rate_period: float | None = None
    rate_key: str | None = None
    rate_limit: int | None = None
    rate_window: float | None = None
    traceparent: str | None = None
    # Attempts whose worker died under them, since the last release (ADR 0015).
    crashes: tuple[Crash, ...] = ()
    max_crashes: int = DEFAULT_MAX_CRASHES

    @property
    def is_finished(self) -> bool:
        return self.status.is_terminal

    @property
    def attempts_left(self) -> int:
        return max(0, self.max_attempts - self.attempt)

    def to_json(self) -> dict[str, Any]:
        """The job JSON (ADR 0301) (API, CLI ``--json``, callbacks)."""
        return {
            "id": self.id,
            "queue": self.queue,
            "kind": self.kind.value,
            "task": self.task,
            "payload": self.payload,
            "status": self.status.value,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "priority": self.priority,
            "run_at": _iso(self.run_at),
            "timeout": self.timeout,
            "result": self.result,
            "error": self.error.to_json() if self.error else None,
            "tenant": self.tenant,
            "idempotency_key": self.idempotency_key,
            "parent_id": self.parent_id,
            "callback_url": self.callback_url,
            "lease_owner": self.lease_owner,
            "lease_expires_at": _iso(self.lease_expires_at),
            "cancel_requested": self.cancel_requested,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "crashes": [c.to_json() for c in self.crashes],
            "max_crashes": self.max_crashes,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
