"""Agent routes (the :class:`~treadle.agents.plugin.Agents` plug-in's router).

Agents are submitted like tasks: ``POST /v1/jobs`` or ``POST /v1/run`` with
``{"task": "<agent name>", "payload": {"input": ...}}``. This adds:

* ``GET /v1/agents/runs/{id}`` → the run turn by turn (another tenant's → 404)
* ``GET /v1/agents/spend`` → spend of the caller's tenant (admin keys: every tenant)
* ``PUT /v1/agents/caps/{tenant}`` ``{"cap_usd": 5.0 | null}`` → set a tenant's cap (admin)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from treadle.agents.plugin import Agents
from treadle.agents.runs import run_view
from treadle.api.auth import Principal, require
from treadle.api.jobs import Reader
from treadle.api.models import NAME_PATTERN
from treadle.api.problems import Problem
from treadle.core.job import JobKind

if TYPE_CHECKING:
    from treadle.app import Treadle

router = APIRouter(prefix="/v1/agents", tags=["agents"])
Admin = Annotated[Principal, Depends(require("admin"))]


class CapBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cap_usd: float | None = Field(ge=0, allow_inf_nan=False,
                                  description="US dollars; null removes the cap")


def _plugin(request: Request) -> tuple[Treadle, Agents]:
    treadle: Treadle = request.app.state.treadle
    return treadle, treadle.find_plugin(Agents) or treadle.use(Agents())


@router.get("/runs/{job_id}", summary="An agent run, turn by turn")
def get_run(request: Request, job_id: int, principal: Reader) -> JSONResponse:
    treadle, _ = _plugin(request)
    if not 1 <= job_id <= 2**63 - 1:
        raise Problem(404, f"job {job_id} not found", slug="job-not-found")
    job = treadle.get_job(job_id, tenant=principal.tenant)
    if job.kind is not JobKind.AGENT:
        raise Problem(404, f"job {job_id} is not an agent run", slug="job-not-found")
    return JSONResponse(run_view(job, treadle.job_steps(job.id)))


@router.get("/spend", summary="Agent spend per tenant")
async def spend(request: Request, principal: Reader) -> JSONResponse:
    _, plugin = _plugin(request)
    rows = await run_in_threadpool(plugin.ledger.by_tenant, 1000)
    if not principal.allows("admin"):
        rows = [r for r in rows if r.tenant == principal.tenant]
    return JSONResponse({"tenants": [r.to_json() for r in rows]})


@router.put("/caps/{tenant}", summary="Set or remove a tenant's spending cap")
async def set_cap(
    request: Request,
    tenant: Annotated[str, Path(min_length=1, max_length=200, pattern=NAME_PATTERN)],
    body: CapBody, principal: Admin,
) -> JSONResponse:
    _, plugin = _plugin(request)
    await run_in_threadpool(plugin.ledger.set_cap, tenant, body.cap_usd)
    return JSONResponse({"tenant": tenant, "cap_usd": body.cap_usd})
