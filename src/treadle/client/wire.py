"""From HTTP answers to the library's values: jobs, events, logs and typed errors.

Every answer is untrusted until parsed: bodies are read up to a size cap, parsed strictly
(finite numbers, bounded nesting: ``treadle.sandbox.wirejson``) and validated against the
API's own response models (``treadle.api.models``), then turned into the same frozen
records the library returns (``Job``, ``JobEvent``, ``JobLog``). Anything else is a
:class:`~treadle.core.errors.BadResponse`, never a hang or a ``KeyError``.

Errors (``application/problem+json``, ADR 0301) become the library's exception classes;
the exception's ``detail`` is the whole problem document (``type``, ``title``,
``status``, ``detail``, ``instance`` and any extra members).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from treadle.api.models import EventOut, JobOut, LogOut
from treadle.core.errors import (
    AccessDenied,
    BadResponse,
    ErrorClass,
    ErrorInfo,
    IllegalTransition,
    InvalidInput,
    JobNotFound,
    RateLimited,
    StoreUnavailable,
    Transient,
    TreadleError,
    UnknownTask,
)
from treadle.core.job import Crash, Job, JobEvent, JobKind, JobLog
from treadle.core.lifecycle import JobStatus
from treadle.sandbox import wirejson

# A stored value nests at most 100 deep (ADR 0006); the job JSON wraps it in a few levels.
MAX_DEPTH = wirejson.MAX_DEPTH + 8
DEFAULT_MAX_RESPONSE_BYTES = 64 << 20

M = TypeVar("M", bound=BaseModel)


def parse_body(raw: bytes, what: str) -> Any:
    """Strict JSON, or :class:`BadResponse` naming what was expected."""
    try:
        return wirejson.loads(raw, max_depth=MAX_DEPTH)
    except (wirejson.UnsafeJSON, UnicodeDecodeError) as exc:
        raise BadResponse(f"the server's answer ({what}) is not valid JSON: {exc}"[:300],
                          detail={"bytes": len(raw)}) from None


def model(cls: type[M], data: Any, what: str) -> M:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        where = ".".join(str(x) for x in errors[0]["loc"]) if errors else ""
        msg = errors[0]["msg"] if errors else "invalid"
        raise BadResponse(f"the server's answer ({what}) does not match the API: "
                          f"{where}: {msg}"[:300]) from None


def job_from(data: Any) -> Job:
    """The job JSON (ADR 0301) as the library's ``Job``."""
    out = model(JobOut, data, "job")
    try:
        kind = JobKind(out.kind)
        error = (ErrorInfo(ErrorClass(out.error.class_), out.error.message, out.error.detail)
                 if out.error is not None else None)
    except ValueError as exc:  # a kind or error class this client does not know
        raise BadResponse(f"the server's job {out.id} is not understood: {exc}") from None
    return Job(
        id=out.id, queue=out.queue, kind=kind, task=out.task, payload=out.payload,
        status=JobStatus(out.status), priority=out.priority, run_at=out.run_at,
        attempt=out.attempt, max_attempts=out.max_attempts, timeout=out.timeout,
        tenant=out.tenant, created_at=out.created_at, lease_owner=out.lease_owner,
        lease_expires_at=out.lease_expires_at, idempotency_key=out.idempotency_key,
        result=out.result, error=error, parent_id=out.parent_id, callback_url=out.callback_url,
        cancel_requested=out.cancel_requested, started_at=out.started_at,
        finished_at=out.finished_at,
        crashes=tuple(Crash(c.at, c.worker, c.attempt) for c in out.crashes),
        max_crashes=out.max_crashes,
    )


def events_from(data: Any) -> list[JobEvent]:
    rows = _list_of(data, "events")
    out = []
    for row in rows:
        e = model(EventOut, row, "event")
        try:
            out.append(JobEvent(
                id=e.id, job_id=e.job_id,
                from_status=JobStatus(e.from_status) if e.from_status else None,
                to_status=JobStatus(e.to_status), attempt=e.attempt, worker=e.worker,
                reason=e.reason, at=e.at, detail=e.detail))
        except ValueError as exc:
            raise BadResponse(f"the server's event {e.id} is not understood: {exc}") from None
    return out


def logs_from(data: Any) -> list[JobLog]:
    out = []
    for row in _list_of(data, "logs"):
        entry = model(LogOut, row, "log line")
        out.append(JobLog(entry.job_id, entry.attempt, entry.at, entry.message))
    return out


def _list_of(data: Any, key: str) -> list[Any]:
    rows = data.get(key) if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise BadResponse(f"the server's answer has no {key!r} list")
    return rows


def error_from(status: int, content_type: str, raw: bytes,
               headers: Mapping[str, str]) -> TreadleError:
    """The library's exception for an error answer; ``detail`` is the problem document."""
    problem: dict[str, Any] = {}
    if "json" in content_type:
        try:
            parsed = wirejson.loads(raw, max_depth=MAX_DEPTH)
        except (wirejson.UnsafeJSON, UnicodeDecodeError):
            parsed = None
        if isinstance(parsed, dict):
            problem = parsed
    if not problem:  # not ours (a proxy's HTML page, an empty body): keep a short excerpt
        excerpt = raw[:200].decode("utf-8", "replace")
        problem = {"type": "about:blank", "title": f"HTTP {status}", "status": status,
                   "detail": excerpt or f"HTTP {status}"}
    slug = str(problem.get("type", "")).rsplit(":", 1)[-1]
    message = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")[:2000]
    cls = _error_class(status, slug)
    if cls is RateLimited:
        return RateLimited(message, retry_after=_retry_after(headers), detail=problem)
    return cls(message, detail=problem)


def _error_class(status: int, slug: str) -> type[TreadleError]:
    if status in (401, 403):
        return AccessDenied
    if status == 404:
        if slug == "worker-not-found":
            from treadle.dynamic.executor import WorkerNotFound

            return WorkerNotFound
        return JobNotFound
    if status == 409:
        return InvalidInput if slug == "idempotency-conflict" else IllegalTransition
    if status == 422 and slug == "unknown-task":
        return UnknownTask
    if status == 429:
        return RateLimited
    if status == 503:
        return StoreUnavailable
    if status >= 500:
        return Transient
    if status >= 400:
        return InvalidInput  # 400, 405, 413, 415, 422: the request was refused as sent
    return BadResponse  # a status the API never answers with (1xx, 3xx)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        value = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return value if 0 <= value <= 86_400 else None


def dumps(body: Any) -> bytes:
    """Request bodies: refused here (``InvalidInput``) when not strict JSON. Text the
    server cannot store (lone surrogates, NUL) is escaped and refused there (422)."""
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"the request body is not JSON: {exc}"[:300]) from None
