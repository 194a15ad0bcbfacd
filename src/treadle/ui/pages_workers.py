"""``/workers/new``: the dynamic-worker editor (write, run now, save as a named worker).

Dynamic workers are not wired into jobs yet. The page is always present with the editor
ready; running and saving are enabled only when ``treadle.sandbox`` imports *and* the app
has a ``workers`` registry (feature-detected per request, so nothing here changes when it
lands). The registry is expected to offer::

    treadle.workers.run(spec: WorkerSpec, input, *, tenant: str, mode: "load"|"get") -> RunResult
    treadle.workers.save(name: str, spec: WorkerSpec, *, tenant: str) -> object with ``id``
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from treadle.core.errors import TreadleError
from treadle.core.job import validate_name
from treadle.ui.auth import can_write_jobs
from treadle.ui.web import UIContext

LIMIT_FIELDS = ("timeout", "cpu_seconds", "memory_mb", "max_output_bytes")
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


def registry(ctx: UIContext) -> Any | None:
    """The app's dynamic-worker registry, or None while the feature is not available."""
    try:
        importlib.import_module("treadle.sandbox")
    except ImportError:
        return None
    reg = getattr(ctx.treadle, "workers", None)
    if reg is None or not hasattr(reg, "run"):
        return None
    return reg


def register(router: APIRouter, ctx: UIContext) -> None:
    @router.get("/workers/new", response_class=HTMLResponse, include_in_schema=False)
    async def editor(request: Request) -> Response:
        user = ctx.user(request)
        if user is None:
            return ctx.login_redirect(request)
        return ctx.render(request, "workers_new.html", {
            "available": registry(ctx) is not None,
            "can_save": hasattr(registry(ctx), "save"),
            "default_code": DEFAULT_CODE,
            "limit_fields": LIMIT_FIELDS,
        }, user=user)

    @router.post("/workers/run", response_class=HTMLResponse, include_in_schema=False)
    async def run(request: Request) -> Response:
        return await _act(request, ctx, "run")

    @router.post("/workers/save", response_class=HTMLResponse, include_in_schema=False)
    async def save(request: Request) -> Response:
        return await _act(request, ctx, "save")


async def _act(request: Request, ctx: UIContext, what: str) -> Response:
    user = ctx.user(request)
    if user is None:
        return ctx.login_redirect(request)
    form = await ctx.checked_form(request, user)
    if isinstance(form, Response):
        return form
    reg = registry(ctx)
    result: dict[str, Any] = {"ok": False, "what": what}
    if reg is None or (what == "save" and not hasattr(reg, "save")):
        result["error"] = ("Dynamic workers are not available on this server yet: the sandbox "
                           "is not connected to jobs. Your code was not run or saved.")
    elif not can_write_jobs(user):
        result["error"] = "Your API key may not run or save workers."
    else:
        try:
            values = dict(form)
            result.update(await run_in_threadpool(
                lambda: _call(reg, form_values=values, tenant=user.tenant, what=what)))
            result["ok"] = True
        except (TreadleError, ValueError, TypeError) as exc:
            result["error"] = getattr(exc, "message", None) or str(exc)
    return ctx.render(request, "_worker_result.html", {"result": result}, user=user)


def _call(reg: Any, *, form_values: dict[str, Any], tenant: str, what: str) -> dict[str, Any]:
    from treadle.sandbox import Limits, WorkerSpec

    def text(name: str) -> str:
        value = form_values.get(name, "")
        return value.strip() if isinstance(value, str) else ""

    limits: dict[str, float] = {}
    for name in LIMIT_FIELDS:
        if text(name):
            limits[name] = float(text(name))
    language = text("language")
    code = form_values.get("code", "")
    spec = WorkerSpec(code=code if isinstance(code, str) else "", language=language,  # type: ignore[arg-type]
                      limits=Limits.from_dict(limits))
    if what == "save":
        name = validate_name("worker name", text("name"))
        saved = reg.save(name, spec, tenant=tenant)
        return {"saved_id": str(getattr(saved, "id", saved)), "name": name}
    payload = json.loads(text("input") or "null")
    mode = "get" if text("mode") == "cached" else "load"
    out = reg.run(spec, payload, tenant=tenant, mode=mode)
    return {
        "output": getattr(out, "output", out),
        "logs": list(getattr(out, "logs", [])),
        "duration_ms": getattr(out, "duration_ms", None),
        "reused": getattr(out, "reused", None),
    }
