"""The agents' pages: ``/agents`` (spend per tenant, recent runs), ``/agents/runs/{id}``
(one run turn by turn: messages, tool calls with arguments and results, tokens, cost,
timings, stop reason) and the spend panel on the dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from treadle.agents.plugin import Agents
from treadle.agents.runs import run_view
from treadle.core.errors import JobNotFound
from treadle.core.job import JobKind
from treadle.kinds import UiPages
from treadle.store import JobFilter
from treadle.ui.web import UIContext

if TYPE_CHECKING:
    from treadle.ui.session import SessionUser

RECENT_RUNS = 50


def pages() -> UiPages:
    return UiPages(register=register, templates=Path(__file__).parent / "templates",
                   nav=(("/agents", "Agents"),), dashboard=spend_panel)


def _spend(ctx: UIContext, user: SessionUser) -> list[dict[str, Any]]:
    plugin = ctx.treadle.find_plugin(Agents)
    if plugin is None:
        return []
    rows = plugin.ledger.by_tenant()
    return [r.to_json() for r in rows if user.is_admin or r.tenant == user.tenant]


def spend_panel(ctx: UIContext, user: SessionUser) -> tuple[str, dict[str, Any]]:
    return "_agent_spend.html", {"spend": _spend(ctx, user)}


def _index(ctx: UIContext, user: SessionUser) -> dict[str, Any]:
    runs = [j for j in ctx.store.list_jobs(JobFilter(tenant=user.tenant_filter,
                                                     limit=RECENT_RUNS * 4))
            if j.kind is JobKind.AGENT][:RECENT_RUNS]
    return {"spend": _spend(ctx, user), "runs": runs}


def _run(ctx: UIContext, user: SessionUser, job_id: int) -> dict[str, Any] | None:
    try:
        job = ctx.store.get_job(job_id, tenant=user.tenant_filter)
    except JobNotFound:
        return None
    if job.kind is not JobKind.AGENT:
        return None
    return {"job": job, "run": run_view(job, ctx.treadle.job_steps(job.id))}


def register(router: APIRouter, ctx: UIContext) -> None:
    @router.get("/agents", response_class=HTMLResponse, include_in_schema=False)
    async def index(request: Request) -> Response:
        user = ctx.user(request)
        if user is None:
            return ctx.login_redirect(request)
        data = await run_in_threadpool(_index, ctx, user)
        return ctx.render(request, "agents.html", data, user=user)

    @router.get("/agents/runs/{job_id}", response_class=HTMLResponse, include_in_schema=False)
    async def run_page(request: Request, job_id: int) -> Response:
        user = ctx.user(request)
        if user is None:
            return ctx.login_redirect(request)
        if not 1 <= job_id <= 2**63 - 1:
            return ctx.error(request, user, 404, f"No agent run {job_id}.")
        data = await run_in_threadpool(_run, ctx, user, job_id)
        if data is None:
            return ctx.error(request, user, 404,
                             f"No agent run {job_id} (or not in your tenant).")
        return ctx.render(request, "agent_run.html", data, user=user)
