"""Workflow routes: ``POST /v1/events`` and ``GET /v1/jobs/{id}/steps`` (ADR 0009).

The API router of the :class:`~treadle.workflows.plugin.Workflows` plug-in. Workflows
themselves are submitted like tasks (``POST /v1/jobs {"task": "report", ...}``).

* ``POST /v1/events {"key", "payload"}`` → **202** ``{"id", "key", "woken"}``: stored for
  the caller's tenant; the workflows waiting on the key are woken in the same
  transaction, and one that reaches its wait later still receives it. A payload over
  :data:`~treadle.workflows.MAX_EVENT_BYTES` → **413**.
* ``GET /v1/jobs/{id}/steps`` → **200** ``{"steps": [...]}`` (another tenant's job → 404).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from treadle.api.jobs import Reader, Submitter
from treadle.api.problems import Problem
from treadle.workflows.events import MAX_EVENT_BYTES
from treadle.workflows.plugin import Workflows

if TYPE_CHECKING:
    from treadle.app import Treadle

router = APIRouter(prefix="/v1", tags=["workflows"])


class SendEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not dropped

    key: str = Field(min_length=1, max_length=200, description="What waiting workflows match")
    payload: Any = Field(default=None, description="Any JSON; ctx.wait_event returns it")


class EventSent(BaseModel):
    id: int
    key: str
    woken: list[int]


def _plugin(request: Request) -> Workflows:
    treadle: Treadle = request.app.state.treadle
    return treadle.find_plugin(Workflows) or treadle.use(Workflows())


@router.post("/events", status_code=202, response_model=EventSent,
             summary="Send an event to the workflows waiting on its key")
async def send_event(request: Request, body: SendEvent, principal: Submitter) -> JSONResponse:
    size = len(json.dumps(body.payload, separators=(",", ":")).encode())
    if size > MAX_EVENT_BYTES:
        raise Problem(413, f"event payload is {size} bytes; the limit is {MAX_EVENT_BYTES}",
                      limit=MAX_EVENT_BYTES)
    service = _plugin(request).service
    event_id, woken = await run_in_threadpool(
        service.send_event, body.key, body.payload, tenant=principal.tenant)
    return JSONResponse({"id": event_id, "key": body.key, "woken": woken}, status_code=202)


@router.get("/jobs/{job_id}/steps", summary="A workflow job's steps")
def job_steps(request: Request, job_id: int, principal: Reader) -> JSONResponse:
    treadle: Treadle = request.app.state.treadle
    if not 1 <= job_id <= 2**63 - 1:
        raise Problem(404, f"job {job_id} not found", slug="job-not-found")
    job = treadle.get_job(job_id, tenant=principal.tenant)  # 404 for other tenants
    steps = _plugin(request).service.steps(job.id)
    return JSONResponse({"steps": [s.to_json() for s in steps]})
