"""``/`` dashboard, ``/queues`` and the ``/metrics`` page (plus their live fragments)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Match
from starlette.types import Scope

from treadle.core.ages import format_age, parse_age
from treadle.core.errors import TreadleError
from treadle.core.job import DEFAULT_RETENTION, JobFilter, validate_name
from treadle.core.lifecycle import JobStatus
from treadle.store.usage import UsageReader
from treadle.ui import queries
from treadle.ui.auth import can_steer_queues
from treadle.ui.session import SessionUser
from treadle.ui.web import SECURITY_HEADERS, UIContext, form_str

WORKER_STALE = timedelta(seconds=60)  # several missed heartbeats: probably dead
RECENT_FAILURES = 8


def _page(
    ctx: UIContext, template: str, build: Callable[[UIContext, SessionUser], dict[str, Any]]
) -> Callable[[Request], Awaitable[Response]]:
    """A logged-in GET page (or its live fragment) rendered from ``build``'s context."""

    async def endpoint(request: Request) -> Response:
        user = ctx.user(request)
        if user is None:
            return ctx.login_redirect(request)
        data = await run_in_threadpool(build, ctx, user)
        return ctx.render(request, template, data, user=user)

    return endpoint


def register(router: APIRouter, ctx: UIContext) -> None:
    for path, template, build in (
        ("/", "dashboard.html", _dashboard),
        ("/ui/dashboard/live", "_dashboard_live.html", _dashboard),
        ("/queues", "queues.html", _queues),
        ("/ui/queues/live", "_queues_table.html", _queues),
        ("/schedules", "schedules.html", _schedules),
    ):
        router.get(path, response_class=HTMLResponse, include_in_schema=False)(
            _page(ctx, template, build)
        )

    @router.post("/queues/{name}", response_class=HTMLResponse, include_in_schema=False)
    async def steer_queue(request: Request, name: str) -> Response:
        posted = await ctx.posted(request)
        if isinstance(posted, Response):
            return posted
        user, form = posted
        if not can_steer_queues(user):
            return ctx.error(request, user, 403, "Only an admin key may steer queues.")
        action = form_str(form, "action")
        try:
            validate_name("queue", name)
            if action == "retention":
                message = await run_in_threadpool(
                    _set_retention, ctx, name, form_str(form, "retention"))
            else:
                message = await run_in_threadpool(
                    _steer, ctx, name, action, form_str(form, "concurrency_limit"))
        except (TreadleError, ValueError) as exc:
            message = f"Queue {name}: {getattr(exc, 'message', None) or exc}"
            kind = "warn"
        else:
            kind = "ok"
        if request.headers.get("hx-request"):
            # HTMX swaps the table in place; the notice is part of the fragment.
            data = await run_in_threadpool(_queues, ctx, user)
            data["notice"] = {"kind": kind, "text": message}
            return ctx.render(request, "_queues_table.html", data, user=user)
        return ctx.redirect(request, "/queues", flash=(kind, message))

    async def metrics_page(request: Request) -> Response:
        user = ctx.user(request)
        if user is None:
            return ctx.login_redirect(request)
        window = request.query_params.get("window", "1h")
        data = await run_in_threadpool(_series, ctx, user, window)
        return ctx.render(request, "metrics.html",
                          {"series": data, "windows": list(queries.WINDOWS)}, user=user)

    # The route class survives include_router (FastAPI copies routes with their class).
    router.add_api_route("/metrics", metrics_page, methods=["GET"], include_in_schema=False,
                         response_class=HTMLResponse, route_class_override=HtmlOnlyRoute)

    @router.get("/ui/data/series.json", include_in_schema=False)
    async def series_json(request: Request) -> Response:
        user = ctx.user(request)
        if user is None:
            return JSONResponse({"error": "login required"}, status_code=401)
        window = request.query_params.get("window", "1h")
        data = await run_in_threadpool(_series, ctx, user, window)
        return JSONResponse(data.to_json(), headers=SECURITY_HEADERS)


def _series(ctx: UIContext, user: SessionUser, window: str) -> queries.Series:
    return queries.series(ctx.store, tenant=user.tenant_filter, window=window,
                          now=datetime.now(UTC))


def _set_retention(ctx: UIContext, name: str, text: str) -> str:
    """``12h``, ``1d``, ``2w``...; empty: back to the default (ADR 0010)."""
    seconds = parse_age(text) if text.strip() else None
    ctx.store.set_retention(name, seconds)
    shown = format_age(seconds if seconds is not None else DEFAULT_RETENTION)
    return f"Queue {name}: finished jobs are kept {shown}."


def _steer(ctx: UIContext, name: str, action: str, limit: str) -> str:
    if action == "pause":
        ctx.store.set_queue(name, paused=True)
        return f"Queue {name} paused: workers will not claim from it."
    if action == "resume":
        ctx.store.set_queue(name, paused=False)
        return f"Queue {name} resumed."
    if action == "limit":
        if not limit:
            ctx.store.set_queue(name, clear_limit=True)
            return f"Queue {name}: concurrency limit removed."
        value = int(limit)
        if not 1 <= value <= 100_000:
            raise ValueError("the concurrency limit must be between 1 and 100000")
        ctx.store.set_queue(name, concurrency_limit=value)
        return f"Queue {name}: at most {value} job(s) run at once."
    raise ValueError(f"unknown action {action!r}")


def _queues(ctx: UIContext, user: SessionUser) -> dict[str, Any]:
    queues = ctx.store.queues()
    failed: dict[str, int] = {}
    # Failed jobs per queue for the user's own scope (QueueInfo only has the last hour).
    for job in ctx.store.list_jobs(
        JobFilter(tenant=user.tenant_filter, statuses=(JobStatus.FAILED,), limit=1000)
    ):
        failed[job.queue] = failed.get(job.queue, 0) + 1
    return {"queues": queues, "failed": failed, "can_steer": can_steer_queues(user),
            "notice": None}


def _schedules(ctx: UIContext, user: SessionUser) -> dict[str, Any]:
    # Schedules are the app's code, shared like queues (ADR 0010).
    return {"schedules": ctx.treadle.schedules(upcoming=5)}


def _dashboard(ctx: UIContext, user: SessionUser) -> dict[str, Any]:
    now = datetime.now(UTC)
    counts = ctx.store.count_by_status(tenant=user.tenant_filter)
    workers = ctx.store.worker_processes() if user.is_admin else []
    failures = ctx.store.list_jobs(
        JobFilter(tenant=user.tenant_filter, statuses=(JobStatus.FAILED,), limit=RECENT_FAILURES)
    )
    hour = queries.window_totals(ctx.store, tenant=user.tenant_filter,
                                 since=now - timedelta(hours=1))
    return {
        "counts": {s.value: counts.get(s.value, 0) for s in JobStatus},
        "queues": ctx.store.queues(),
        "workers": [(w, now - w.last_heartbeat < WORKER_STALE) for w in workers],
        "failures": failures,
        "hour": hour,
        "panels": [panel(ctx, user) for panel in ctx.panels],
        "usage": _usage(ctx, user, now),
    }


def _usage(ctx: UIContext, user: SessionUser, now: datetime) -> dict[str, Any]:
    """The last day's usage (ADR 0022): per queue in the user's scope, per tenant for
    admins only (a tenant never sees another's figures)."""
    reader = UsageReader(ctx.store)
    since = now - timedelta(hours=24)
    out: dict[str, Any] = {"queues": reader.summary(start=since, end=now, group_by="queue",
                                                    tenant=user.tenant_filter),
                           "tenants": []}
    if user.is_admin:
        out["tenants"] = reader.summary(start=since, end=now, group_by="tenant")
    return out


class HtmlOnlyRoute(APIRoute):
    """Content negotiation for ``/metrics``: browsers get the page, scrapers the API's text.

    ADR 0304 gives ``/metrics`` to both the UI page and the Prometheus endpoint. Prometheus
    never sends ``text/html`` in Accept; a browser navigation always does.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is Match.FULL and not wants_html(scope):
            return Match.NONE, {}
        return match, child


def wants_html(scope: Scope) -> bool:
    for key, value in scope.get("headers", []):
        if key == b"accept":
            return b"text/html" in value
    return False
