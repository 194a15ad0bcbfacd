"""Request and response shapes; they are the OpenAPI document clients see."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, field_validator, model_validator

from treadle.core.storable import is_valid_text

# Printable ASCII without surrounding spaces: a subset of what the core accepts
# (treadle.core.bounds.validate_name), so a schema-valid name is always a valid one.
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
        return utc_instant(v, "run_at")

    @field_validator("callback_url")
    @classmethod
    def _short_url(cls, v: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if v is not None and len(str(v)) > 2048:
            raise ValueError("callback_url is longer than 2048 characters")
        return v


class LimitsIn(_Strict):
    """Sandbox limits of a dynamic worker or run; omitted ones keep their default (or the
    worker's own, for a per-run override). Bounds match ``treadle.sandbox.Limits``."""

    timeout: float | None = Field(default=None, ge=0.001, le=3600,
                                  description="Wall-clock seconds; the sandbox is killed after.")
    cpu_seconds: float | None = Field(default=None, ge=0.01, le=3600)
    memory_mb: int | None = Field(default=None, ge=32, le=16384)
    max_output_bytes: int | None = Field(default=None, ge=1, le=1 << 30)
    max_log_bytes: int | None = Field(default=None, ge=0, le=1 << 30)
    max_host_calls: int | None = Field(default=None, ge=0, le=100_000)

    def overrides(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def utc_instant(value: datetime, name: str) -> datetime:
    """``value`` in UTC; ValueError when its offset carries it past year 1 or 9999 (which
    Python cannot represent, e.g. ``0001-01-01T00:00:00+01:00``)."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{name} is outside the years 1 to 9999 in UTC") from None


def _encodable(value: str | None) -> str | None:
    # A lone surrogate (valid JSON, "\ud800") or NUL cannot be stored as text (ADR 0006).
    if value is not None and not is_valid_text(value):
        raise ValueError("must be valid Unicode without NUL (no lone surrogates)")
    return value


Language = Literal["javascript", "python"]
CodeField = Field(min_length=1, max_length=1 << 20,
                  description="A classic script defining `handler(input, env)` (JS: may be "
                              "`async function`; no ES modules) or Python `def handler`.")


class RunRequest(SubmitJob):
    """``POST /v1/run``: either a task (``task`` + ``payload``) or inline code for a
    one-off sandbox ``load`` (``code`` + ``language`` + ``input`` + ``limits``); the job JSON
    comes back when it finishes within the wait."""

    task: str | None = Field(  # type: ignore[assignment]
        default=None, min_length=1, max_length=200, pattern=NAME_PATTERN,
        description="A registered task; or send `code` instead.",
    )
    code: str | None = Field(default=None, min_length=1, max_length=1 << 20,
                             description="Inline code for a one-off `load` (instead of `task`).")
    language: Language | None = Field(default=None, description="Required with `code`.")
    input: Any = Field(default=None, description="The handler's input (with `code`).")
    limits: LimitsIn | None = None
    wait: float | None = Field(
        default=None, ge=0, le=3600,
        description="Seconds to wait for the result; capped by the server's sync window.",
    )

    @field_validator("code")
    @classmethod
    def _code_ok(cls, v: str | None) -> str | None:
        return _encodable(v)

    @model_validator(mode="after")
    def _task_xor_code(self) -> RunRequest:
        if (self.task is None) == (self.code is None):
            raise ValueError("send either `task` (with `payload`) or `code` (with `language`)")
        if self.code is not None:
            if self.language is None:
                raise ValueError("`language` ('javascript' or 'python') is required with `code`")
            extra = [n for n in ("run_at", "delay") if getattr(self, n) is not None]
            if "payload" in self.model_fields_set:
                extra.insert(0, "payload")
            if extra:
                raise ValueError(f"{', '.join(extra)}: not for inline code (use `input`)")
        else:
            extra = [n for n in ("language", "limits") if getattr(self, n) is not None]
            if "input" in self.model_fields_set:
                extra.append("input")
            if extra:
                raise ValueError(f"{', '.join(extra)}: only for inline code (tasks take "
                                 "`payload`)")
        return self

    def as_submit(self) -> SubmitJob:
        """The task variant as the async submit body (same idempotency fingerprint)."""
        data = self.model_dump(exclude={"code", "language", "input", "limits", "wait"},
                               exclude_none=True)
        return SubmitJob.model_validate(data)


class RegisterWorker(_Strict):
    """``POST /v1/dynamic-workers``: register dynamic-worker code (content-addressed id)."""

    code: str = CodeField
    language: Language
    limits: LimitsIn | None = None
    name: str | None = Field(default=None, min_length=1, max_length=200, pattern=NAME_PATTERN)
    allow_wasm: bool = Field(default=False,
                             description="Keep WebAssembly/SharedArrayBuffer (JavaScript).")
    fetch_allow: list[str] = Field(
        default_factory=list, max_length=100,
        description="Egress allow-list for `env.fetch`: host names or URL prefixes.",
    )
    kv: bool = Field(default=False, description="Give the code `env.kv` (tenant-scoped).")

    @field_validator("code", "name")
    @classmethod
    def _text_ok(cls, v: str | None) -> str | None:
        return _encodable(v)

    @field_validator("fetch_allow")
    @classmethod
    def _entries(cls, v: list[str]) -> list[str]:
        for entry in v:
            if (not entry or len(entry) > 2048 or any(c.isspace() for c in entry)
                    or _encodable(entry) is None):
                raise ValueError("entries are host names or URL prefixes (no spaces)")
        return v


class RunWorker(_Strict):
    """``POST /v1/dynamic-workers/{id}/run``: one run of a registered worker, as a job."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    input: Any = Field(default=None, description="The handler's input (JSON).")
    mode: Literal["load", "get"] = Field(
        default="load", description="`load`: a fresh sandbox; `get`: the warm instance.")
    limits: LimitsIn | None = Field(default=None, description="Per-run overrides.")
    wait: float | None = Field(
        default=None, ge=0, le=3600,
        description="Seconds to wait for the result (sync mode); capped by the sync window.",
    )
    async_: bool = Field(default=False, alias="async",
                         description="Answer 202 + Location at once (same as `?async=true`).")


class WorkerConfigOut(BaseModel):
    allow_wasm: bool
    fetch_allow: list[str]
    kv: bool


class LimitsOut(BaseModel):
    timeout: float
    cpu_seconds: float
    memory_mb: int
    max_output_bytes: int
    max_log_bytes: int
    max_host_calls: int


class WorkerOut(BaseModel):
    """A registered dynamic worker."""

    id: str = Field(description="`dw_` + hash of code and configuration.")
    tenant: str
    name: str | None
    language: Language
    limits: LimitsOut
    config: WorkerConfigOut
    created_at: datetime | None
    code: str | None = Field(default=None, description="Left out in lists.")


class WorkerList(BaseModel):
    workers: list[WorkerOut]


class ErrorOut(BaseModel):
    class_: str = Field(alias="class")
    message: str
    detail: Any = None


class WaitingOn(BaseModel):
    """Why a queued job is not running: run_at, queue_paused, queue_limit,
    key_concurrency, behind_tenant or ready; quarantined for a quarantined job."""

    rule: str
    message: str
    ahead: int | None = None


class ScheduleOut(BaseModel):
    name: str
    task: str
    expr: str
    tz: str
    overlap: str
    catch_up: str
    paused: bool
    last_fire: datetime | None
    next_fires: list[datetime]


class ScheduleList(BaseModel):
    schedules: list[ScheduleOut]


class CrashOut(BaseModel):
    """An attempt whose worker died under it (ADR 0015)."""

    at: datetime
    worker: str | None
    attempt: int


class ProgressOut(BaseModel):
    done: float
    total: float | None = None
    message: str | None = None


class JobOut(BaseModel):
    """The job JSON (ADR 0301)."""

    id: int
    queue: str
    kind: str
    task: str
    payload: dict[str, Any]
    status: Literal["queued", "running", "waiting", "quarantined", "succeeded", "failed",
                    "cancelled"]
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
    crashes: list[CrashOut] = Field(
        default_factory=list,
        description="Attempts whose worker died under them since the last release (ADR 0015)")
    max_crashes: int = Field(3, description="Quarantined when crashes reach this")
    waiting_on: WaitingOn | None = Field(
        None, description="For a queued job: the rule that holds it (ADR 0010)")
    progress: ProgressOut | None = Field(
        None, description="The latest progress its worker's heartbeat carried (ADR 0016)")


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
    retention_seconds: float = Field(
        description="Finished jobs of this queue are deleted after this many seconds")


class QueueList(BaseModel):
    queues: list[QueueOut]


class QueuePatch(_Strict):
    """Pause/resume a queue, set its concurrency limit (``null`` removes it) or its
    retention (``null``: the default, 7 days)."""

    paused: bool | None = None
    concurrency_limit: int | None = Field(default=None, ge=0, le=100_000)
    retention_seconds: int | None = Field(
        default=None, ge=60, le=10 * 365 * 86400,
        description="Keep finished jobs this long (60 s to ten years); null: 7 days")


HOOK_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
HOOK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # fullmatch: `$` allows a "\n"


class HookIn(_Strict):
    name: str = Field(min_length=1, max_length=100, pattern=HOOK_NAME_PATTERN)
    task: str = Name
    queue: str | None = Field(default=None, min_length=1, max_length=200,
                              pattern=NAME_PATTERN)
    secret: str | None = Field(
        default=None, min_length=16, max_length=256,
        description="HMAC secret the sender signs with; generated when omitted.",
    )

    @field_validator("secret")
    @classmethod
    def _printable_secret(cls, v: str | None) -> str | None:
        # A secret is typed into the sender's configuration: control characters (NUL
        # included, which PostgreSQL cannot store) are a mistake or an attack, never a key.
        if v is not None and not v.isprintable():
            raise ValueError("the secret must be printable text (no control characters)")
        return v


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
