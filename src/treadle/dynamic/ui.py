"""``/dynamic-workers/new``: the dynamic-worker editor (write, run now, save as a named worker).

Running is what the API's ``POST /v1/run`` with code does: the snippet is registered
(content-addressed) and run as a job of kind ``code`` through ``app.dynamic_workers`` (see
:mod:`treadle.dynamic`); the page waits up to :data:`RUN_WINDOW` seconds for a worker
process to finish it, then shows the result, the console output (the attempt's logs) and,
for a failure, the error class, with a link to the job's page. Saving registers the code
under a name (``POST /v1/dynamic-workers``). The feature is detected per request: without a
``DynamicWorkers`` plug-in on the app the page is not mounted at all (ADR 0008); the
"not available" branch remains for a registry that cannot be reached.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from treadle.core.errors import TreadleError
from treadle.core.job import validate_name
from treadle.dynamic.plugin import DynamicWorkers
from treadle.dynamic.registry import WorkerRegistry
from treadle.ui.auth import can_write_jobs
from treadle.ui.web import UIContext

if TYPE_CHECKING:
    from treadle.app import Treadle

LIMIT_FIELDS = ("timeout", "cpu_seconds", "memory_mb", "max_output_bytes")
_INT_LIMITS = frozenset({"memory_mb", "max_output_bytes"})
# How long "Run now" waits for the job before showing "still running" with a link.
RUN_WINDOW = 20.0
MAX_LOG_LINES = 500
DEFAULT_CODE = {
    "javascript": (
        "async function handler(input, env) {\n"
        "  console.log(\"hello from a sandbox\");\n"
        "  return { echo: input };\n"
        "}\n"
    ),
    "python": (
        "def handler(input, env):\n"
        "    print(\"hello from a sandbox\")\n"
        "    return {\"echo\": input}\n"
    ),
}


def registry(ctx: UIContext) -> WorkerRegistry | None:
    """The app's dynamic-worker registry, or None when the plug-in is not used."""
    return registry_of(ctx.treadle)


def registry_of(app: Treadle) -> WorkerRegistry | None:
    plugin = app.find_plugin(DynamicWorkers)
    return plugin.registry if plugin is not None else None


def register(router: APIRouter, ctx: UIContext) -> None:
    @router.get("/dynamic-workers/new", response_class=HTMLResponse, include_in_schema=False)
    async def editor(request: Request) -> Response:
        user = ctx.user(request)
        if user is None:
            return ctx.login_redirect(request)
        available = registry(ctx) is not None
        return ctx.render(request, "workers_new.html", {
            "available": available,
            "can_save": available,
            "can_write": can_write_jobs(user),
            "default_code": DEFAULT_CODE,
            "limit_fields": LIMIT_FIELDS,
        }, user=user)

    @router.post("/dynamic-workers/run", response_class=HTMLResponse, include_in_schema=False)
    async def run(request: Request) -> Response:
        return await _act(request, ctx, "run")

    @router.post("/dynamic-workers/save", response_class=HTMLResponse, include_in_schema=False)
    async def save(request: Request) -> Response:
        return await _act(request, ctx, "save")

    # The page's first address (ADR 0023): bookmarks, and forms of a page loaded before an
    # upgrade, reach the new one (308 keeps the method and body of a POST).
    for action, methods in (("new", ["GET"]), ("run", ["POST"]), ("save", ["POST"])):
        router.add_api_route(f"/workers/{action}", _moved(f"/dynamic-workers/{action}"),
                             methods=methods, include_in_schema=False)


def _moved(to: str) -> Callable[[Request], Awaitable[Response]]:
    async def moved(request: Request) -> Response:
        query = request.url.query  # as sent (percent-encoded)
        return RedirectResponse(f"{to}?{query}" if query else to, status_code=308)

    return moved


async def _act(request: Request, ctx: UIContext, what: str) -> Response:
    posted = await ctx.posted(request)
    if isinstance(posted, Response):
        return posted
    user, form = posted
    reg = registry(ctx)
    result: dict[str, Any] = {"ok": False, "what": what, "error": None}
    if reg is None:
        result["error"] = ("Dynamic workers are not enabled on this server. Your code was not "
                           "run or saved.")
    elif not can_write_jobs(user):
        result["error"] = "Your API key may not run or save workers."
    else:
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            result.update(await run_in_threadpool(
                _call, ctx, reg, values, user.tenant, what))
            result["ok"] = True
        except TreadleError as exc:
            result["error"] = exc.message
        except (ValueError, TypeError) as exc:
            result["error"] = str(exc)
    return ctx.render(request, "_worker_result.html", {"result": result}, user=user)


def _limits(values: dict[str, str]) -> dict[str, float | int]:
    limits: dict[str, float | int] = {}
    for name in LIMIT_FIELDS:
        raw = values.get(name, "").strip()
        if not raw:
            continue
        try:
            number = float(raw)
        except ValueError:
            raise ValueError(f"limit {name.replace('_', ' ')} must be a number") from None
        if name in _INT_LIMITS:
            if not number.is_integer():
                raise ValueError(f"limit {name.replace('_', ' ')} must be a whole number")
            limits[name] = int(number)
        else:
            limits[name] = number
    return limits


def _call(
    ctx: UIContext, reg: Any, values: dict[str, str], tenant: str, what: str
) -> dict[str, Any]:
    language = values.get("language", "").strip()
    code = values.get("code", "")
    limits = _limits(values)
    if what == "save":
        name = validate_name("worker name", values.get("name", "").strip())
        saved = reg.register(code, language, limits or None, name=name, tenant=tenant)
        return {"saved_id": saved.id, "name": name}
    raw_input = values.get("input", "").strip()
    try:
        payload = json.loads(raw_input or "null")
    except ValueError as exc:
        raise ValueError(f"the input is not JSON: {exc}") from None
    except RecursionError:  # not a ValueError: it would escape the form's error path
        raise ValueError("the input is nested too deeply (at most 100 levels)") from None
    mode = "get" if values.get("mode") == "cached" else "load"
    # Check the whole run before storing the code: a refused input registers nothing.
    unsaved = reg.unsaved(code, language, limits or None, tenant=tenant)
    reg.new_job(unsaved.id, payload, mode=mode, tenant=tenant, unsaved=unsaved)
    worker = reg.register(code, language, limits or None, tenant=tenant)
    handle = reg.run(worker.id, payload, mode, tenant=tenant, wait=RUN_WINDOW)
    job = handle.job
    logs = [entry.message for entry in ctx.treadle.job_logs(job.id)][:MAX_LOG_LINES]
    out: dict[str, Any] = {
        "job_id": job.id,
        "worker_id": worker.id,
        "mode": "cached" if mode == "get" else "fresh",
        "status": job.status.value,
        "finished": job.is_finished,
        "output": job.result,
        "logs": logs,
        "duration_ms": None,
        "failure": None,
    }
    if job.started_at is not None and job.finished_at is not None:
        out["duration_ms"] = (job.finished_at - job.started_at).total_seconds() * 1000
    if job.error is not None:
        info = job.error
        detail = info.detail if isinstance(info.detail, dict) else {}
        out["failure"] = {
            "class": info.error_class.value,
            "message": info.message,
            "stack": str(detail.get("stack") or ""),
        }
    return out
