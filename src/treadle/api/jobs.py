"""Job routes: submit (async), run (sync), read, list, cancel, retry, release, discard."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from treadle.api.auth import Principal, keystore_for, require
from treadle.api.config import ApiConfig
from treadle.api.models import (
    NAME_PATTERN,
    EventList,
    JobOut,
    JobPage,
    LogList,
    RunRequest,
    SubmitJob,
    utc_instant,
)
from treadle.api.problems import Problem
from treadle.core import traceparent
from treadle.core.job import Job, JobFilter, NewJob
from treadle.core.lifecycle import JobStatus
from treadle.store.base import Transaction
from treadle.store.groupcommit import Guard

if TYPE_CHECKING:
    from treadle.app import Treadle

BUILTIN_PREFIX = "treadle."
router = APIRouter(prefix="/v1", tags=["jobs"])


def _one_idempotency_key(
    request: Request,
    key: Annotated[str | None, Header(
        alias="Idempotency-Key", min_length=1, max_length=200,
        description="Same key + same body: the same job. Same key + other body: 409.",
    )] = None,
) -> str | None:
    # Header() reads the first of several; which one a client (or a proxy that appended
    # one) meant is unknowable, and picking one would make a second job on a reordered retry.
    if key is not None and len(request.headers.getlist("idempotency-key")) > 1:
        raise Problem(422, "send one Idempotency-Key header, not several")
    return key


IdempotencyKey = Annotated[str | None, Depends(_one_idempotency_key)]
Submitter = Annotated[Principal, Depends(require("submit"))]
Reader = Annotated[Principal, Depends(require("read"))]


def _ctx(request: Request) -> tuple[Treadle, ApiConfig]:
    return request.app.state.treadle, request.app.state.api_config


def _job_response(job: Job, status: int, *, location: bool = False,
                  replayed: bool = False) -> JSONResponse:
    headers = {}
    if location:
        headers["Location"] = f"/v1/jobs/{job.id}"
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(job.to_json(), status_code=status, headers=headers)


def _fingerprint(body: SubmitJob) -> str:
    canon = body.model_dump(mode="json", exclude={"wait"}, exclude_none=True)
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _prepare(
    treadle: Treadle, config: ApiConfig, body: SubmitJob, principal: Principal,
    key: str | None, trace: str | None = None,
) -> tuple[NewJob, Guard | None]:
    """Validate fully, writing nothing: the job, and with an ``Idempotency-Key`` the guard
    that claims the key inside the job's own transaction (ADR 0019): a conflict refuses
    this request alone (409), and the claim commits or rolls back with the job.
    ``trace``: the request's parsed traceparent, stored with the job (ADR 0021)."""
    if body.task.startswith(BUILTIN_PREFIX):
        raise Problem(422, f"{body.task!r} is a built-in task and cannot be submitted",
                      slug="builtin-task")
    task = treadle.get_task(body.task)
    size = len(json.dumps(body.payload, separators=(",", ":")))
    if size > config.max_payload_bytes:
        raise Problem(413, f"payload is {size} bytes; the limit is {config.max_payload_bytes}",
                      limit=config.max_payload_bytes)
    new = task.new_job(
        body.payload, idempotency_key=key, run_at=body.run_at, delay=body.delay,
        priority=body.priority, queue=body.queue, tenant=principal.tenant,
        callback_url=str(body.callback_url) if body.callback_url else None,
    )
    if trace is not None:
        new = replace(new, traceparent=trace)
    if key is None:
        return new, None
    keystore, tenant, fingerprint = keystore_for(treadle), principal.tenant, _fingerprint(body)

    def claim_key(tx: Transaction) -> None:
        if keystore.claim_idempotency(tenant, key, fingerprint, tx=tx) != fingerprint:
            raise Problem(409, "this Idempotency-Key was already used with a different request",
                          slug="idempotency-conflict")

    return new, claim_key


def _submit(
    treadle: Treadle, config: ApiConfig, body: SubmitJob, principal: Principal,
    key: str | None, trace: str | None = None,
) -> tuple[Job, bool]:
    """Validate fully, then write once: a refused request never leaves a row."""
    new, guard = _prepare(treadle, config, body, principal, key, trace)
    handle = treadle.enqueue([new], guard=guard)[0]
    return handle.job, handle.created


def _runs_user_code(treadle: Treadle, name: str) -> bool:
    """Whether preparing a job of ``name`` may call the user's code (a key function)."""
    task = treadle.tasks.get(name)
    specs = (task.options.concurrency, task.options.rate_limit) if task else ()
    return any(spec is not None and callable(spec[0]) for spec in specs)


@router.post(
    "/jobs", status_code=202, response_model=JobOut,
    responses={200: {"model": JobOut, "description": "Idempotent replay: the existing job"}},
    summary="Submit a job (async)",
)
async def submit_job(
    request: Request, body: SubmitJob, principal: Submitter, key: IdempotencyKey = None,
) -> JSONResponse:
    treadle, config = _ctx(request)
    # Validation is a bounded amount of work on a body the loop has already parsed, so it
    # runs here, unless the task's key function (user code) would run; the commit is
    # awaited without holding a thread, coalesced with concurrent requests (ADR 0019).
    trace = request_traceparent(request)
    if _runs_user_code(treadle, body.task):
        new, guard = await run_in_threadpool(_prepare, treadle, config, body, principal, key,
                                             trace)
    else:
        new, guard = _prepare(treadle, config, body, principal, key, trace)
    handle = (await treadle.enqueue_async([new], guard=guard))[0]
    _count(request, handle.job, handle.created)
    return _job_response(handle.job, 202 if handle.created else 200, location=True,
                         replayed=not handle.created)


@router.post(
    "/run", status_code=200, response_model=JobOut,
    responses={202: {"model": JobOut, "description": "Still running after the wait; poll it"}},
    summary="Run a task, or inline code in a fresh sandbox, and wait for the result (sync)",
)
async def run_job(
    request: Request, body: RunRequest, principal: Submitter, key: IdempotencyKey = None,
) -> JSONResponse:
    if body.code is not None:  # inline code: a one-off sandbox `load` (ADR 0401)
        from treadle.dynamic.api import run_inline

        return await run_inline(request, body, principal, key)
    treadle, config = _ctx(request)
    task_body = body.as_submit()
    trace = request_traceparent(request)
    wait = config.sync_window if body.wait is None else min(body.wait, config.sync_window)
    limiter: anyio.CapacityLimiter = request.app.state.sync_waiters
    if wait <= 0 or limiter.available_tokens < 1:
        # Saturated: do not queue behind other waiters; answer 202 at once.
        job, created = await run_in_threadpool(
            _submit, treadle, config, task_body, principal, key, trace)
        _count(request, job, created)
        return _job_response(job, 200 if job.is_finished else 202, location=True)

    def submit_and_wait() -> tuple[Job, bool]:
        # One thread hop for submit + wait + read keeps the sync path short.
        job, created = _submit(treadle, config, task_body, principal, key, trace)
        if not job.is_finished:
            treadle.store.wait_for_finish([job.id], wait)
            job = treadle.get_job(job.id)
        return job, created

    job, created = await anyio.to_thread.run_sync(submit_and_wait, limiter=limiter)
    _count(request, job, created)
    return _job_response(job, 200 if job.is_finished else 202, location=True)


@router.get("/jobs", response_model=JobPage, summary="List jobs, newest first")
def list_jobs(
    request: Request,
    principal: Reader,
    status: Annotated[list[JobStatus] | None, Query(description="Repeatable")] = None,
    queue: Annotated[str | None, Query(max_length=200, pattern=NAME_PATTERN)] = None,
    task: Annotated[str | None, Query(max_length=200, pattern=NAME_PATTERN)] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    cursor: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JSONResponse:
    treadle, config = _ctx(request)
    for name, value in (("created_after", created_after), ("created_before", created_before)):
        if value is not None and value.tzinfo is None:
            raise Problem(422, f"{name} must include a timezone")
    try:
        created_after = utc_instant(created_after, "created_after") if created_after else None
        created_before = (utc_instant(created_before, "created_before") if created_before
                          else None)
    except ValueError as exc:
        raise Problem(422, str(exc)) from None
    limit = min(limit, config.max_page_size)
    jobs = treadle.list_jobs(JobFilter(
        tenant=principal.tenant, statuses=tuple(status or ()), queue=queue, task=task,
        created_after=created_after, created_before=created_before, before_id=cursor,
        limit=limit + 1,
    ))
    next_cursor = jobs[limit - 1].id if len(jobs) > limit else None
    return JSONResponse({"jobs": [j.to_json() for j in jobs[:limit]], "next_cursor": next_cursor})


def _path_id(job_id: int) -> int:
    if not 1 <= job_id <= 2**63 - 1:
        raise Problem(404, f"job {job_id} not found", slug="job-not-found")
    return job_id


@router.get("/jobs/{job_id}", response_model=JobOut, summary="Read one job")
def get_job(request: Request, job_id: int, principal: Reader) -> JSONResponse:
    treadle, _ = _ctx(request)
    job = treadle.get_job(_path_id(job_id), tenant=principal.tenant)
    return JSONResponse({**job.to_json(), "waiting_on": treadle.why_not_running(job),
                         "progress": treadle.job_progress(job.id)})


@router.get("/jobs/{job_id}/events", response_model=EventList, summary="A job's event log")
def job_events(request: Request, job_id: int, principal: Reader) -> JSONResponse:
    treadle, _ = _ctx(request)
    job = treadle.get_job(_path_id(job_id), tenant=principal.tenant)  # 404 for other tenants
    return JSONResponse({"events": [e.to_json() for e in treadle.job_events(job.id)]})


@router.get("/jobs/{job_id}/logs", response_model=LogList, summary="A job's log lines")
def job_logs(request: Request, job_id: int, principal: Reader) -> JSONResponse:
    treadle, _ = _ctx(request)
    job = treadle.get_job(_path_id(job_id), tenant=principal.tenant)
    return JSONResponse({"logs": [entry.to_json() for entry in treadle.job_logs(job.id)]})


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, summary="Cancel a job")
def cancel_job(request: Request, job_id: int, principal: Submitter) -> JSONResponse:
    treadle, _ = _ctx(request)
    job = treadle.get_job(_path_id(job_id), tenant=principal.tenant)
    if job.is_finished:
        raise Problem(409, f"job {job.id} already finished ({job.status.value})",
                      slug="job-finished", job=_summary(job))
    return _job_response(treadle.cancel(job.id, tenant=principal.tenant), 200)


@router.post("/jobs/{job_id}/retry", response_model=JobOut, summary="Retry a failed job")
def retry_job(request: Request, job_id: int, principal: Submitter) -> JSONResponse:
    treadle, _ = _ctx(request)
    job = treadle.get_job(_path_id(job_id), tenant=principal.tenant)
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise Problem(409, f"only failed or cancelled jobs can be retried; job {job.id} is "
                      f"{job.status.value}", slug="not-retryable", job=_summary(job))
    return _job_response(treadle.retry(job.id, tenant=principal.tenant), 200)


def request_traceparent(request: Request) -> str | None:
    """The request's W3C ``traceparent``, canonical, or None: a missing, malformed or
    oversized header is ignored (a new trace starts), never stored raw (ADR 0021)."""
    values = request.headers.getlist("traceparent")
    return traceparent.parse(values[0]) if len(values) == 1 else None


@router.post("/jobs/{job_id}/release", response_model=JobOut,
             summary="Release a quarantined job: queued again, its crash count reset")
def release_job(request: Request, job_id: int, principal: Submitter) -> JSONResponse:
    treadle, _ = _ctx(request)
    job = _quarantined(treadle, job_id, principal, "released")
    return _job_response(treadle.release(job.id, tenant=principal.tenant), 200)


@router.post("/jobs/{job_id}/discard", response_model=JobOut,
             summary="Discard a quarantined job: failed for good")
def discard_job(request: Request, job_id: int, principal: Submitter) -> JSONResponse:
    treadle, _ = _ctx(request)
    job = _quarantined(treadle, job_id, principal, "discarded")
    return _job_response(treadle.discard(job.id, tenant=principal.tenant), 200)


def _quarantined(treadle: Treadle, job_id: int, principal: Principal, verb: str) -> Job:
    job = treadle.get_job(_path_id(job_id), tenant=principal.tenant)
    if job.status is not JobStatus.QUARANTINED:
        raise Problem(409, f"only quarantined jobs can be {verb}; job {job.id} is "
                      f"{job.status.value}", slug="not-quarantined", job=_summary(job))
    return job


def _count(request: Request, job: Job, created: bool) -> None:
    if created:
        request.app.state.metrics.count_enqueued(job.queue)


def _summary(job: Job) -> dict[str, Any]:
    return {"id": job.id, "status": job.status.value}
