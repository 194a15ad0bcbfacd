"""Request and response shapes; they are the OpenAPI document clients see."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator, model_validator

# Printable ASCII without surrounding spaces: a subset of what the core accepts
# (treadle.core.job.validate_name), so a schema-valid name is always a valid one.
NAME_PATTERN = r"^[!-~]([ -~]*[!-~])?$"
Name = Field(min_length=1, max_length=200, pattern=NAME_PATTERN)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitJob(_Strict):
    """``POST /v1/jobs``: enqueue a job of a registered task."""

    task: str = Name
    payload: dict[str, Any] = Field(default_factory=dict)
    queue: str | None = Field(default=None, min_length=1, max_length=200,
                              pattern=NAME_PATTERN)
    priority: int | None = Field(default=None, ge=-32768, le=32767)
    run_at: datetime | None = None
    delay: float | None = Field(default=None, ge=0, le=366 * 24 * 3600)
    callback_url: AnyHttpUrl | None = None

    @field_validator("run_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return None
        if v.tzinfo is None:
            raise ValueError("run_at must include a timezone, e.g. 2030-01-01T00:00:00Z")
        # PostgreSQL refuses offsets beyond ±15:59; the instant is what matters.
        return v.astimezone(UTC)

    @field_validator("callback_url")
    @classmethod
    def _short_url(cls, v: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if v is not None and len(str(v)) > 2048:
            raise ValueError("callback_url is longer than 2048 characters")
        return v


class RunRequest(SubmitJob):
    """``POST /v1/run``: a task (``task`` + ``payload``); the job JSON comes back when it
    finishes within the wait. Inline ``code`` runs (DESIGN §4) are a later variant."""

    wait: float | None = Field(
        default=None, ge=0, le=3600,
        description="Seconds to wait for the result; capped by the server's sync window.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_inline_code_yet(cls, data: Any) -> Any:
        # Say so plainly instead of "extra fields not permitted".
        if isinstance(data, dict) and ("code" in data or "language" in data):
            raise ValueError("inline code runs are not available yet; submit a task instead")
        return data


class ErrorOut(BaseModel):
    class_: str = Field(alias="class")
    message: str
    detail: Any = None


class JobOut(BaseModel):
    """The job JSON of DESIGN §4."""

    id: int
    queue: str
    kind: str
    task: str
    payload: dict[str, Any]
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    attempt: int
    max_attempts: int
    priority: int
    run_at: datetime
    timeout: float | None
    result: Any = None
    error: ErrorOut | None
    tenant: str
    idempotency_key: str | None
    parent_id: int | None
    callback_url: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_cursor: int | None = Field(
        description="Pass as `cursor` for the next (older) page; null on the last page."
    )


class EventOut(BaseModel):
    id: int
    job_id: int
    from_status: str | None
    to_status: str
    attempt: int
    worker: str | None
    reason: str
    at: datetime
    detail: Any = None


class EventList(BaseModel):
    events: list[EventOut]


class LogOut(BaseModel):
    job_id: int
    attempt: int
    at: datetime
    message: str


class LogList(BaseModel):
    logs: list[LogOut]


class QueueOut(BaseModel):
    name: str
    paused: bool
    concurrency_limit: int | None
    depth: int
    scheduled: int
    retrying: int
    running: int
    failed_last_hour: int
    throughput_last_hour: int


class QueueList(BaseModel):
    queues: list[QueueOut]


class QueuePatch(_Strict):
    """Pause/resume a queue or set its concurrency limit (``null`` removes it)."""

    paused: bool | None = None
    concurrency_limit: int | None = Field(default=None, ge=0, le=100_000)


class HookIn(_Strict):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    task: str = Name
    queue: str | None = Field(default=None, min_length=1, max_length=200,
                              pattern=NAME_PATTERN)
    secret: str | None = Field(
        default=None, min_length=16, max_length=256,
        description="HMAC secret the sender signs with; generated when omitted.",
    )


class HookOut(BaseModel):
    name: str
    tenant: str
    task: str
    queue: str | None
    created_at: datetime | None
    secret: str | None = Field(default=None, description="Shown only when the hook is created.")


class HookList(BaseModel):
    hooks: list[HookOut]


class HookAccepted(BaseModel):
    id: int
    status: str
    created: bool


class Health(BaseModel):
    status: Literal["ok"]
    database: Literal["ok"]


class ProblemOut(BaseModel):
    """RFC 9457 problem details; extra members carry machine-readable context."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
