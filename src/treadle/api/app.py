"""``create_app``: the FastAPI application over one ``Treadle``."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

from treadle.api import admin, fastpath, jobs, problems
from treadle.api import usage as usage_api
from treadle.api.auth import _bearer, principal_from_request
from treadle.api.config import ApiConfig
from treadle.api.metrics import ASGIApp, Metrics, Scope
from treadle.api.models import Health
from treadle.api.problems import PROBLEM_JSON, BodyTooLarge, Problem
from treadle.api.renamed import RenamedPaths
from treadle.artifacts import api as artifacts_api
from treadle.streams import sse as streams_sse

if TYPE_CHECKING:
    from treadle.app import Treadle

# Error statuses any operation may answer; documented once for every operation so
# clients (and schemathesis) know the problem+json shape of each.
_ERROR_STATUSES = {
    "400": "Malformed request (refused by the HTTP parser, e.g. a control byte in a header)",
    "401": "Missing or invalid API key",
    "403": "The key lacks the required scope",
    "404": "Not found (another tenant's job is not found either)",
    "405": "Method not allowed",
    "409": "Conflict (idempotency key reuse, job state)",
    "413": "Request body or payload over the limit",
    "422": "Invalid input",
    "431": "Request line and headers over 16 KiB",
    "500": "Internal error",
    "503": "Database unavailable",
}


def create_app(treadle: Treadle, config: ApiConfig, *, metrics: Metrics | None = None) -> FastAPI:
    """The API app. Pass ``metrics`` to share a registry with in-process workers."""
    app = fastpath.TreadleAPI(
        title=f"{config.title} API",
        version="1",
        description="Durable job execution. Errors are `application/problem+json` (RFC 9457).",
    )
    m = metrics or Metrics()
    m.bind(treadle)
    app.state.treadle = treadle
    app.state.api_config = config
    app.state.metrics = m
    app.state.sync_waiters = anyio.CapacityLimiter(config.max_sync_waiters)
    problems.install(app)
    app.include_router(jobs.router)
    app.include_router(artifacts_api.router)  # every kind's jobs may have files
    app.include_router(streams_sse.router)  # GET /v1/jobs/{id}/stream (ADR 0011)
    media = _media_router()
    if media is not None:
        app.include_router(media)
    # Each job-kind plug-in the app uses brings its own routes (ADR 0008).
    for plugin in treadle.plugins:
        router = plugin.api_router(treadle)
        if router is not None:
            app.include_router(router)
    app.include_router(admin.router)
    app.include_router(usage_api.router)  # GET /v1/usage (ADR 0022)
    _ops_routes(app)
    # Order: size limit innermost so its 413 is counted by the metrics middleware.
    app.add_middleware(_BodyLimit, limit=config.max_body_bytes)
    renamed = [r for plugin in treadle.plugins for r in plugin.api_old_prefixes]
    if renamed:  # old path prefixes served by the new routes, marked deprecated (ADR 0023)
        app.add_middleware(RenamedPaths, renamed=renamed)
    app.add_middleware(_Wrap, wrap=m.middleware)
    # Accepted submissions skip FastAPI's per-request machinery; the rest, and every
    # error, still go through all of the above (ADR 0026).
    fastpath.install(app, treadle, config, m, renamed)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _media_router() -> Any:
    """``POST /v1/media`` when the media extra (PyAV) is installed."""
    try:
        from treadle.media.api import router
    except ImportError:
        return None
    return router


def _ops_routes(app: FastAPI) -> None:
    @app.get("/healthz", response_model=Health, tags=["ops"], summary="Liveness + database")
    def healthz(request: Request) -> JSONResponse:
        treadle: Treadle = request.app.state.treadle
        treadle.store.count_by_status(tenant="__healthz__")  # one cheap indexed query
        return JSONResponse({"status": "ok", "database": "ok"})

    @app.get(
        "/metrics", tags=["ops"], summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics_endpoint(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Response:
        config: ApiConfig = request.app.state.api_config
        if not config.public_metrics:
            raw = credentials.credentials if credentials is not None else None
            principal = await run_in_threadpool(principal_from_request, request, raw)
            if not principal.allows("admin"):
                raise Problem(403, "metrics need an admin key (or public_metrics)")
        m: Metrics = request.app.state.metrics
        body = await run_in_threadpool(m.render)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


class _Wrap:
    """Adapts a function ``app -> app`` to Starlette's middleware-class interface."""

    def __init__(self, app: ASGIApp, wrap: Any) -> None:
        self._inner = wrap(app)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        await self._inner(scope, receive, send)


class _BodyLimit:
    """Refuse bodies over the limit before anything parses them (413, never 5xx)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    too_large = BodyTooLarge(self.limit)
                    await _send_problem(scope, send, Problem(413, str(too_large.detail)))
                    return
        seen = 0

        async def limited() -> MutableMapping[str, Any]:
            nonlocal seen
            message: MutableMapping[str, Any] = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:  # chunked upload without Content-Length
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)


async def _send_problem(scope: Scope, send: Any, p: Problem) -> None:
    response = problems.problem_response(None, p)
    response.headers["Connection"] = "close"
    await response(scope, _no_receive, send)


async def _no_receive() -> MutableMapping[str, Any]:
    return {"type": "http.disconnect"}


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description,
                         routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Problem"] = {
        "type": "object",
        "description": "RFC 9457 problem details",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
        },
        "additionalProperties": True,
    }
    # Name the registered tasks: clients (and schemathesis) then know which are valid.
    treadle: Treadle = app.state.treadle
    tasks = sorted(t for t in treadle.tasks if not t.startswith("treadle."))
    for model in ("SubmitJob", "RunRequest", "HookIn"):
        prop = components.get(model, {}).get("properties", {}).get("task")
        # An optional task (RunRequest: task or code) is `anyOf: [string, null]`.
        for branch in (prop or {}).get("anyOf", [prop] if prop else []):
            if branch.get("type") == "string" and tasks:
                branch.pop("pattern", None)
                branch["enum"] = tasks
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path_item in schema.get("paths", {}).values():
        for op in path_item.values():
            responses = op.setdefault("responses", {})
            for code, description in _ERROR_STATUSES.items():
                responses[code] = {"description": description, "content": problem}
    app.openapi_schema = schema
    return schema
