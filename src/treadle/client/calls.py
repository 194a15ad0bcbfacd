"""Every API operation the client offers, as data: method, path, body, what answers are
success and how to parse them. :class:`~treadle.client.Client` and
:class:`~treadle.client.AsyncClient` only differ in how they send a :class:`Call`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from treadle.api.models import WorkerList, WorkerOut
from treadle.client.wire import events_from, job_from, logs_from, model
from treadle.core import traceparent
from treadle.core.errors import BadResponse, InvalidInput
from treadle.core.job import Job, JobEvent, JobLog
from treadle.core.lifecycle import JobStatus

T = TypeVar("T")
_WORKER_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
# Dynamic workers live here (ADR 0023; /v1/workers is its deprecated alias): one constant.
WORKERS = "/v1/dynamic-workers"


@dataclass(frozen=True)
class Answer:
    status: int
    data: Any
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Answer], T]
    body: Any = None
    has_body: bool = False
    params: list[tuple[str, str | int | float | bool | None]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    ok: tuple[int, ...] = (200,)
    extra_time: float = 0.0  # how long the server may hold the answer (sync runs)


@dataclass(frozen=True)
class Submitted:
    job: Job
    created: bool  # False: an idempotency key matched an existing job


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_cursor: int | None  # pass as ``cursor`` for the next (older) page


def job_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**63 - 1:
        raise InvalidInput(f"a job id is a positive integer, got {value!r}")
    return value


def _key_header(key: str | None) -> dict[str, str]:
    if key is None:
        return {}
    if not key or not key.isprintable() or not key.isascii() or len(key) > 200:
        raise InvalidInput("an idempotency key is 1-200 printable ASCII characters")
    return {"Idempotency-Key": key}


def trace_header(value: str | None) -> dict[str, str]:
    """``traceparent`` for a submission (ADR 0021): the given one (checked), else the
    current OpenTelemetry span's when the SDK is installed and a span is active."""
    if value is not None:
        return {"traceparent": traceparent.check(value)}
    try:
        from opentelemetry import trace
    except ImportError:
        return {}
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"traceparent": f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"}


def _job(a: Answer) -> Job:
    return job_from(a.data)


def _submitted(a: Answer) -> Submitted:
    return Submitted(job_from(a.data),
                     created=a.headers.get("idempotent-replayed", "").lower() != "true")


def _opts(**values: Any) -> dict[str, Any]:
    out = {}
    for name, value in values.items():
        if value is not None:
            out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def submit(task: str, payload: Mapping[str, Any] | None, *, queue: str | None,
           priority: int | None, run_at: datetime | None, delay: float | None,
           callback_url: str | None, idempotency_key: str | None,
           trace: str | None = None) -> Call[Submitted]:
    body = {"task": task, "payload": dict(payload or {}),
            **_opts(queue=queue, priority=priority, run_at=run_at, delay=delay,
                    callback_url=callback_url)}
    return Call("POST", "/v1/jobs", _submitted, body, True,
                headers={**_key_header(idempotency_key), **trace_header(trace)}, ok=(200, 202))


def run(body: dict[str, Any], wait: float, idempotency_key: str | None,
        trace: str | None = None) -> Call[Submitted]:
    # Always explicit: the client must know how long the server may hold the answer.
    body["wait"] = wait
    return Call("POST", "/v1/run", _submitted, body, True,
                headers={**_key_header(idempotency_key), **trace_header(trace)},
                ok=(200, 202), extra_time=wait)


def run_task(task: str, payload: Mapping[str, Any] | None, *, queue: str | None,
             priority: int | None, callback_url: str | None) -> dict[str, Any]:
    return {"task": task, "payload": dict(payload or {}),
            **_opts(queue=queue, priority=priority, callback_url=callback_url)}


def run_code(code: str, language: str, input: Any,
             limits: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"code": code, "language": language, "input": input,
            **_opts(limits=dict(limits) if limits else None)}


def get_job(jid: int) -> Call[Job]:
    return Call("GET", f"/v1/jobs/{job_id(jid)}", _job)


def waiting_on(jid: int) -> Call[dict[str, Any] | None]:
    """The rule that holds a queued job (``waiting_on`` of the job JSON), or None."""

    def parse(a: Answer) -> dict[str, Any] | None:
        job_from(a.data)
        value = a.data.get("waiting_on")
        if value is not None and not isinstance(value, dict):
            raise BadResponse("the server's waiting_on is not an object")
        return value

    return Call("GET", f"/v1/jobs/{job_id(jid)}", parse)


def list_jobs(*, statuses: list[JobStatus | str] | None, queue: str | None, task: str | None,
              created_after: datetime | None, created_before: datetime | None,
              cursor: int | None, limit: int) -> Call[JobPage]:
    try:
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("status", JobStatus(s).value) for s in statuses or ()]
    except ValueError:
        raise InvalidInput(f"unknown status in {statuses!r}; use one of "
                           f"{', '.join(s.value for s in JobStatus)}") from None
    params += [(k, str(v)) for k, v in _opts(queue=queue, task=task, created_after=created_after,
                                             created_before=created_before,
                                             cursor=cursor, limit=limit).items()]

    def parse(a: Answer) -> JobPage:
        data = a.data if isinstance(a.data, dict) else {}
        rows, nxt = data.get("jobs"), data.get("next_cursor")
        if not isinstance(rows, list) or not (nxt is None or isinstance(nxt, int)):
            raise BadResponse("the server's job list is not {jobs, next_cursor}")
        return JobPage([job_from(r) for r in rows], nxt)

    return Call("GET", "/v1/jobs", parse, params=params)


def events(jid: int) -> Call[list[JobEvent]]:
    return Call("GET", f"/v1/jobs/{job_id(jid)}/events", lambda a: events_from(a.data))


def logs(jid: int) -> Call[list[JobLog]]:
    return Call("GET", f"/v1/jobs/{job_id(jid)}/logs", lambda a: logs_from(a.data))


def cancel(jid: int) -> Call[Job]:
    return Call("POST", f"/v1/jobs/{job_id(jid)}/cancel", _job)


def retry(jid: int) -> Call[Job]:
    return Call("POST", f"/v1/jobs/{job_id(jid)}/retry", _job)


def release(jid: int) -> Call[Job]:
    return Call("POST", f"/v1/jobs/{job_id(jid)}/release", _job)


def discard(jid: int) -> Call[Job]:
    return Call("POST", f"/v1/jobs/{job_id(jid)}/discard", _job)


def send_event(key: str, payload: Any) -> Call[int]:
    def parse(a: Answer) -> int:
        value = a.data.get("id") if isinstance(a.data, dict) else None
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadResponse("the server's answer to an event has no id")
        return value

    return Call("POST", "/v1/events", parse, {"key": key, "payload": payload}, True, ok=(202,))


def _worker_id(worker_id: str) -> str:
    if not isinstance(worker_id, str) or not _WORKER_ID.fullmatch(worker_id):  # `$`: "\n"
        raise InvalidInput(f"not a dynamic worker id: {worker_id!r}")
    return worker_id


def register_dynamic_worker(code: str, language: str, *, name: str | None,
                    limits: Mapping[str, Any] | None, allow_wasm: bool,
                    fetch_allow: list[str] | None, kv: bool) -> Call[WorkerOut]:
    body = {"code": code, "language": language, "allow_wasm": allow_wasm, "kv": kv,
            "fetch_allow": list(fetch_allow or []),
            **_opts(name=name, limits=dict(limits) if limits else None)}
    return Call("POST", WORKERS, lambda a: model(WorkerOut, a.data, "worker"), body, True,
                ok=(200, 201))


def get_dynamic_worker(worker_id: str) -> Call[WorkerOut]:
    return Call("GET", f"{WORKERS}/{_worker_id(worker_id)}",
                lambda a: model(WorkerOut, a.data, "worker"))


def list_dynamic_workers(limit: int) -> Call[list[WorkerOut]]:
    return Call("GET", WORKERS, lambda a: model(WorkerList, a.data, "workers").workers,
                params=[("limit", str(limit))])


def run_dynamic_worker(worker_id: str, input: Any, *, mode: Literal["load", "get"],
               limits: Mapping[str, Any] | None, wait: float, sync: bool,
               idempotency_key: str | None) -> Call[Submitted]:
    body = {"input": input, "mode": mode, "async": not sync, "wait": wait,
            **_opts(limits=dict(limits) if limits else None)}
    return Call("POST", f"{WORKERS}/{_worker_id(worker_id)}/run", _submitted, body, True,
                headers=_key_header(idempotency_key), ok=(200, 202),
                extra_time=wait if sync else 0.0)
