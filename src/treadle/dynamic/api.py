"""Dynamic-worker routes (ADR 0401): register, read, list, run; inline ``/v1/run``.

The API router of the :class:`~treadle.dynamic.DynamicWorkers` plug-in: ``create_app``
includes it when the served app uses the plug-in (ADR 0008).

Every run is a job of kind ``code`` (see :mod:`treadle.dynamic`): the routes only enqueue
it and, in sync mode, wait up to the server's sync window for a worker process to finish
it. The answers:

* ``POST /v1/dynamic-workers`` → **201** + ``Location`` with the worker JSON when the id is new for
  the tenant, **200** with the same JSON when that code and configuration were already
  registered (ids are content hashes, so registering is idempotent; a new ``name``
  relabels the row).
* ``GET /v1/dynamic-workers/{id}`` → 200 (another tenant's worker → 404);
  ``GET /v1/dynamic-workers``.
* ``POST /v1/dynamic-workers/{id}/run`` → sync by default: **200** with the job JSON when it
  finished within the wait, else **202** + ``Location: /v1/jobs/{id}``; with ``"async":
  true`` in the body or ``?async=true``: **202** + ``Location`` at once.
* ``POST /v1/run`` with ``code`` → a one-off ``load``, answered like a task ``/v1/run``.

Bad limits, an unknown language or a body that is not JSON: 422 at submit time. Code that
does not compile is only found when it runs: the job fails with ``invalid_input``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from treadle.api.auth import Principal, keystore_for
from treadle.api.config import ApiConfig
from treadle.api.jobs import IdempotencyKey, Reader, Submitter, request_traceparent
from treadle.api.models import JobOut, RegisterWorker, RunRequest, RunWorker, WorkerList, WorkerOut
from treadle.api.problems import Problem
from treadle.core.job import Job
from treadle.dynamic.executor import WorkerNotFound
from treadle.dynamic.plugin import DynamicWorkers
from treadle.dynamic.registry import WorkerRegistry, as_language, as_limits
from treadle.sandbox import WorkerSpec, worker_id

if TYPE_CHECKING:
    from treadle.app import JobHandle, Treadle

router = APIRouter(prefix="/v1", tags=["dynamic-workers"])
WORKER_ID = re.compile(r"^dw_[0-9a-f]{24}$")
_SYNC_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": JobOut, "description": "Finished within the wait: the job"},
    202: {"model": JobOut, "description": "Still queued or running (or async); poll Location"},
}


def registry(request: Request) -> WorkerRegistry:
    """The served app's dynamic-worker registry. Only ``POST /v1/run`` with code reaches
    here without the plug-in (its other routes exist only with it): a 422 then."""
    treadle: Treadle = request.app.state.treadle
    plugin = treadle.find_plugin(DynamicWorkers)
    if plugin is None:
        raise Problem(422, "running code needs dynamic workers (kind 'code'), which this "
                      "server does not enable")
    return plugin.registry


def _not_found(worker_id: str) -> Problem:
    return Problem(404, f"dynamic worker {worker_id!r} not found", slug="worker-not-found")


def _checked_id(worker_id: str) -> str:
    # Ids are `dw_` + 24 hex digits; anything else cannot exist (and never reaches SQL).
    if not WORKER_ID.fullmatch(worker_id):  # match: `$` allows a trailing "\n"
        raise _not_found(worker_id)
    return worker_id


def _fingerprint(data: dict[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _claim(treadle: Treadle, principal: Principal, key: str | None, data: dict[str, Any]) -> None:
    if key is None:
        return
    fp = _fingerprint(data)
    if keystore_for(treadle).claim_idempotency(principal.tenant, key, fp) != fp:
        raise Problem(409, "this Idempotency-Key was already used with a different request",
                      slug="idempotency-conflict")


def _check_size(config: ApiConfig, value: Any) -> None:
    size = len(json.dumps(value, separators=(",", ":")))
    if size > config.max_payload_bytes:
        raise Problem(413, f"input is {size} bytes; the limit is {config.max_payload_bytes}",
                      limit=config.max_payload_bytes)


def _job_response(job: Job, status: int) -> JSONResponse:
    return JSONResponse(job.to_json(), status_code=status,
                        headers={"Location": f"/v1/jobs/{job.id}"})


async def respond(
    request: Request, submit: Callable[[], JobHandle], wait: float | None, *, sync: bool
) -> JSONResponse:
    """Submit in a thread; in sync mode wait (bounded, like ``/v1/run``) for the result."""
    treadle: Treadle = request.app.state.treadle
    config: ApiConfig = request.app.state.api_config
    window = config.sync_window if wait is None else min(wait, config.sync_window)
    limiter: anyio.CapacityLimiter = request.app.state.sync_waiters
    if not sync or window <= 0 or limiter.available_tokens < 1:
        handle = await run_in_threadpool(submit)
        _count(request, handle)
        return _job_response(handle.job, 200 if sync and handle.job.is_finished else 202)

    def submit_and_wait() -> tuple[JobHandle, Job]:
        handle = submit()
        job = handle.job
        if not job.is_finished:
            treadle.store.wait_for_finish([job.id], window)
            job = treadle.get_job(job.id)
        return handle, job

    handle, job = await anyio.to_thread.run_sync(submit_and_wait, limiter=limiter)
    _count(request, handle)
    return _job_response(job, 200 if job.is_finished else 202)


def _count(request: Request, handle: JobHandle) -> None:
    if handle.created:
        request.app.state.metrics.count_enqueued(handle.job.queue)


def _dump(model: BaseModel, *exclude: str) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude=set(exclude), exclude_none=True, by_alias=True)


@router.post(
    "/dynamic-workers", status_code=201, response_model=WorkerOut,
    responses={200: {"model": WorkerOut,
                     "description": "Already registered (same code and configuration)"}},
    summary="Register dynamic-worker code (idempotent: the id is a content hash)",
)
async def register_worker(
    request: Request, body: RegisterWorker, principal: Submitter
) -> JSONResponse:
    reg = registry(request)

    def work() -> tuple[dict[str, Any], bool]:
        limits = body.limits.overrides() if body.limits else None
        # Validate and hash first (a refused request writes nothing), then upsert.
        spec = WorkerSpec(code=body.code, language=as_language(body.language),
                          limits=as_limits(limits), allow_wasm=body.allow_wasm,
                          fetch_allow=tuple(body.fetch_allow), kv=body.kv)
        existed = reg.repo.get_worker(principal.tenant, worker_id(spec)) is not None
        worker = reg.register(
            body.code, body.language, limits, name=body.name, tenant=principal.tenant,
            allow_wasm=body.allow_wasm, fetch_allow=body.fetch_allow, kv=body.kv,
        )
        return worker.to_json(), not existed

    data, created = await run_in_threadpool(work)
    return JSONResponse(data, status_code=201 if created else 200,
                        headers={"Location": f"/v1/dynamic-workers/{data['id']}"})


@router.get("/dynamic-workers", response_model=WorkerList,
            summary="List the tenant's dynamic workers")
def list_workers(
    request: Request, principal: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JSONResponse:
    workers = registry(request).list(principal.tenant, limit=limit)
    return JSONResponse({"workers": [{**w.to_json(code=False), "code": None} for w in workers]})


@router.get("/dynamic-workers/{worker_id}", response_model=WorkerOut,
            summary="Read a dynamic worker (with its code)")
def get_worker(request: Request, worker_id: str, principal: Reader) -> JSONResponse:
    try:
        worker = registry(request).get(_checked_id(worker_id), tenant=principal.tenant)
    except WorkerNotFound:
        raise _not_found(worker_id) from None
    return JSONResponse(worker.to_json())


@router.post(
    "/dynamic-workers/{worker_id}/run", status_code=200, response_model=JobOut,
    responses=_SYNC_RESPONSES,
    summary="Run a dynamic worker as a job (sync by default; async with `async`)",
)
async def run_worker(
    request: Request, worker_id: str, body: RunWorker, principal: Submitter,
    key: IdempotencyKey = None,
    async_: Annotated[bool, Query(alias="async",
                                  description="Answer 202 + Location at once")] = False,
) -> JSONResponse:
    treadle: Treadle = request.app.state.treadle
    config: ApiConfig = request.app.state.api_config
    reg = registry(request)
    wid = _checked_id(worker_id)
    _check_size(config, body.input)

    def submit() -> JobHandle:
        try:
            new = reg.new_job(
                wid, body.input, mode=body.mode, tenant=principal.tenant,
                limits=body.limits.overrides() if body.limits else None, idempotency_key=key,
            )
        except WorkerNotFound:
            raise _not_found(wid) from None
        _claim(treadle, principal, key,
               {"worker_id": wid, **_dump(body, "wait", "async_")})
        return treadle.enqueue([new])[0]

    return await respond(request, submit, body.wait, sync=not (async_ or body.async_))


async def run_inline(
    request: Request, body: RunRequest, principal: Principal, key: str | None
) -> JSONResponse:
    """``POST /v1/run`` with ``code``: register the snippet (content-addressed) and ``load``
    it once as a job; answered like any ``/v1/run``."""
    treadle: Treadle = request.app.state.treadle
    config: ApiConfig = request.app.state.api_config
    reg = registry(request)
    assert body.code is not None and body.language is not None
    code, language = body.code, body.language
    _check_size(config, body.input)
    trace = request_traceparent(request)

    def submit() -> JobHandle:
        limits = body.limits.overrides() if body.limits else None
        # Validate the whole run (code, limits, input, queue, callback) before writing
        # anything, then settle the idempotency key before the code is stored: a refused
        # request (422, 409) leaves no row behind and does not use up its key.
        worker = reg.unsaved(code, language, limits, tenant=principal.tenant)
        new = reg.new_job(
            worker.id, body.input, mode="load", tenant=principal.tenant, queue=body.queue,
            priority=body.priority or 0, idempotency_key=key,
            callback_url=str(body.callback_url) if body.callback_url else None,
            unsaved=worker,
        )
        if trace is not None:  # the request's trace continues in the run (ADR 0021)
            new = replace(new, traceparent=trace)
        if new.callback_url is not None:  # enqueue checks it too: after our writes
            treadle.check_callback_url(new.callback_url)
        _claim(treadle, principal, key, _dump(body, "wait"))
        reg.register(code, language, limits, tenant=principal.tenant)
        return treadle.enqueue([new])[0]

    return await respond(request, submit, body.wait, sync=True)
