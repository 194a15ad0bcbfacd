"""Queue control, inbound hook bindings and the signed inbound hook endpoint."""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Header, Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from treadle.api.auth import Principal, keystore_for, require
from treadle.api.config import ApiConfig
from treadle.api.jobs import BUILTIN_PREFIX
from treadle.api.keystore import Hook
from treadle.api.models import (
    HOOK_NAME,
    NAME_PATTERN,
    HookAccepted,
    HookIn,
    HookList,
    HookOut,
    QueueList,
    QueueOut,
    QueuePatch,
    ScheduleList,
)
from treadle.api.problems import Problem
from treadle.core.job import validate_name
from treadle.webhooks import SignatureError, verify

if TYPE_CHECKING:
    from treadle.app import Treadle

router = APIRouter(prefix="/v1")
Reader = Annotated[Principal, Depends(require("read"))]
Admin = Annotated[Principal, Depends(require("admin"))]


@router.get("/queues", response_model=QueueList, tags=["queues"], summary="Queue statistics")
def list_queues(request: Request, principal: Reader) -> JSONResponse:
    # Queues are shared infrastructure: their counts span tenants (ADR 0302).
    treadle: Treadle = request.app.state.treadle
    return JSONResponse({"queues": [q.to_json() for q in treadle.store.queues()]})


@router.get("/schedules", response_model=ScheduleList, tags=["schedules"],
            summary="Cron schedules with their next fire times")
def list_schedules(request: Request, principal: Reader) -> JSONResponse:
    # Schedules are the app's code, like queues shared infrastructure.
    treadle: Treadle = request.app.state.treadle
    return JSONResponse({"schedules": treadle.schedules()})


@router.patch("/queues/{name}", response_model=QueueOut, tags=["queues"],
              summary="Pause, resume or limit a queue, or set its retention")
def patch_queue(
    request: Request,
    name: Annotated[str, Path(min_length=1, max_length=200, pattern=NAME_PATTERN)],
    body: QueuePatch,
    principal: Admin,
) -> JSONResponse:
    treadle: Treadle = request.app.state.treadle
    validate_name("queue", name)
    clear = "concurrency_limit" in body.model_fields_set and body.concurrency_limit is None
    if "retention_seconds" in body.model_fields_set:  # null: back to the default
        treadle.store.set_retention(name, body.retention_seconds)
    info = treadle.store.set_queue(
        name, paused=body.paused, concurrency_limit=body.concurrency_limit, clear_limit=clear
    )
    return JSONResponse(info.to_json())


@router.post("/hooks", status_code=201, response_model=HookOut, tags=["hooks"],
             summary="Bind an inbound webhook name to a task")
def create_hook(request: Request, body: HookIn, principal: Admin) -> JSONResponse:
    treadle: Treadle = request.app.state.treadle
    if body.task.startswith(BUILTIN_PREFIX):
        raise Problem(422, f"{body.task!r} is a built-in task", slug="builtin-task")
    treadle.get_task(body.task)  # unknown task: 422 now, not a failed job per delivery
    secret = body.secret or secrets.token_urlsafe(32)
    hook = Hook(body.name, principal.tenant, body.task, body.queue, secret)
    if not keystore_for(treadle).put_hook(hook):
        raise Problem(409, f"hook name {body.name!r} is taken", slug="hook-name-taken")
    stored = keystore_for(treadle).get_hook(body.name)
    assert stored is not None
    return JSONResponse({**stored.to_json(), "secret": secret}, status_code=201)


@router.get("/hooks", response_model=HookList, tags=["hooks"], summary="List hook bindings")
def list_hooks(request: Request, principal: Admin) -> JSONResponse:
    treadle: Treadle = request.app.state.treadle
    hooks = keystore_for(treadle).list_hooks(principal.tenant)
    return JSONResponse({"hooks": [h.to_json() for h in hooks]})


def _hook_name(name: str) -> str | None:
    """``name`` if it could be a hook's name (``HookIn.name``), else None: a name no hook
    can have (NUL, control characters, 5000 characters) is never looked up."""
    return name if HOOK_NAME.fullmatch(name) else None


@router.delete("/hooks/{name}", status_code=204, tags=["hooks"], summary="Remove a binding")
def delete_hook(request: Request, name: str, principal: Admin) -> Response:
    treadle: Treadle = request.app.state.treadle
    if _hook_name(name) is None or not keystore_for(treadle).delete_hook(name,
                                                                          principal.tenant):
        raise Problem(404, f"no hook named {name!r}", slug="hook-not-found")
    return Response(status_code=204)


@router.post(
    "/hooks/{name}", status_code=202, response_model=HookAccepted, tags=["hooks"],
    summary="Receive a signed webhook; it becomes a job of the bound task",
    description="Authenticated by its `Treadle-Signature` (HMAC-SHA256 over "
    "`timestamp + '.' + body` with the hook's secret), not by an API key. The bound "
    "task is called with `body=<the JSON body>`.",
)
async def receive_hook(
    request: Request,
    name: str,
    signature: Annotated[str | None, Header(alias="Treadle-Signature")] = None,
    timestamp: Annotated[str | None, Header(alias="Treadle-Timestamp")] = None,
    delivery: Annotated[str | None, Header(alias="Treadle-Delivery-Id", max_length=200)] = None,
) -> JSONResponse:
    treadle: Treadle = request.app.state.treadle
    config: ApiConfig = request.app.state.api_config
    raw = await request.body()
    hook = (await run_in_threadpool(keystore_for(treadle).get_hook, name)
            if _hook_name(name) is not None else None)
    # An unknown name and a bad signature look alike to the sender: no name probing.
    if hook is None:
        raise Problem(401, "unknown hook or bad signature", slug="bad-signature")
    try:
        verify(hook.secret, raw, signature=signature, timestamp=timestamp,
               tolerance=config.hook_tolerance)
    except SignatureError:
        raise Problem(401, "unknown hook or bad signature", slug="bad-signature") from None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: too deep
        raise Problem(422, "request body is not valid JSON (or nested too deeply)") from None

    def enqueue() -> tuple[int, str, bool]:
        task = treadle.get_task(hook.task)
        key = f"hook:{hook.name}:{delivery}" if delivery else None
        new = task.new_job({"body": body}, idempotency_key=key, queue=hook.queue,
                           tenant=hook.tenant)
        h = treadle.enqueue([new])[0]
        return h.id, h.job.status.value, h.created

    job_id, status, created = await run_in_threadpool(enqueue)
    return JSONResponse({"id": job_id, "status": status, "created": created},
                        status_code=202 if created else 200)
