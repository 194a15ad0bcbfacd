"""``POST /v1/jobs`` without FastAPI's per-request machinery, for requests it accepts
(ADR 0026).

FastAPI spends most of a submission's CPU on routing, dependency resolution and its
middleware stack, not on the job. :class:`SubmitFastPath` serves the common request
(a JSON body that validates, a bearer key or open loopback that may submit, no user code
to run while preparing) with the same functions the route uses (``SubmitJob``,
``_prepare``, ``enqueue_async``, ``_job_response``), so an accepted request gets the
bytes the route would send. Anything else (a bad body, a missing or weak key, an odd
header, an oversized upload, a client that went away) is handed, with the body read so
far replayed, to the full FastAPI app, which answers exactly as it always did: error
shapes live in one place. The hand-off happens before anything is written; after the
commit starts, errors go through the app's own exception handlers.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import _IncludedRouter
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import ValidationError
from starlette.routing import Match

from treadle.api import jobs
from treadle.api.auth import (
    ADMIN_KEY_ID,
    LOOPBACK_KEY_ID,
    Principal,
    _is_admin_key,
    authenticate,
    cached_principal,
)
from treadle.api.config import ApiConfig
from treadle.api.keystore import SCOPES
from treadle.api.metrics import Metrics, Scope
from treadle.api.models import SubmitJob
from treadle.core import traceparent
from treadle.core.job import DEFAULT_TENANT
from treadle.kinds import RenamedPrefix

if TYPE_CHECKING:
    from treadle.app import Treadle

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
PATH = "/v1/jobs"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_JSON_TYPES = frozenset({b"application/json", b"application/json; charset=utf-8"})
_ADMIN = Principal(DEFAULT_TENANT, SCOPES, ADMIN_KEY_ID)
_LOOPBACK = Principal(DEFAULT_TENANT, SCOPES, LOOPBACK_KEY_ID)


class _Refer(Exception):
    """The request is not one the fast path serves: the full app answers it."""


class TreadleAPI(FastAPI):
    """FastAPI whose ``POST /v1/jobs`` requests go to :class:`SubmitFastPath` first."""

    submit_fast_path: SubmitFastPath | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        fast = self.submit_fast_path
        if (fast is not None and scope["type"] == "http" and scope["path"] == PATH
                and scope["method"] == "POST" and fast.usable(scope)):
            await fast(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def full(self, scope: Scope, receive: Any, send: Any) -> None:
        """The whole FastAPI stack (middleware, routing, dependencies, handlers)."""
        await super().__call__(scope, receive, send)


class SubmitFastPath:
    """Serves ``POST /v1/jobs`` requests the route would accept; refers the rest."""

    def __init__(self, app: TreadleAPI, treadle: Treadle, config: ApiConfig, metrics: Metrics,
                 renamed: list[RenamedPrefix]) -> None:
        self.app = app
        self.treadle = treadle
        self.config = config
        self.metrics = metrics
        self.limit = config.max_body_bytes
        # An old prefix that rewrites onto this path would need RenamedPaths' headers.
        self.enabled = not any(r.rewrite(PATH) is not None for r in renamed)
        self._middleware = list(app.user_middleware)
        self._routes: int | None = None  # len(app.router.routes) when routing was checked
        self._routed_here = False
        self._requests = {code: metrics.http_requests.labels("POST", PATH, str(code))
                          for code in (200, 202)}
        self._latency = metrics.http_latency.labels("POST", PATH)
        self.served = self.referred = 0  # requests answered here / by the full app

    def usable(self, scope: Scope) -> bool:
        """Whether the app is still as ``create_app`` built it: no middleware, dependency
        override, route or telemetry added since that the fast path would skip."""
        app = self.app
        if not self.enabled or app.root_path or scope.get("root_path"):
            return False
        if app.dependency_overrides or app.user_middleware != self._middleware:
            return False
        telemetry = getattr(app, "_native_telemetry", None)  # FastAPI's OpenTelemetry
        if telemetry is not None and telemetry.enabled():
            return False
        if self._routes != len(app.router.routes):
            self._routed_here = _routes_to_submit(app)
            self._routes = len(app.router.routes)
        return self._routed_here

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        scope["app"] = self.app
        seen: list[Message] = []
        try:
            body, principal, key, trace = await self._accept(scope, receive, seen)
            if jobs._runs_user_code(self.treadle, body.task):
                raise _Refer  # the route prepares it in a thread (user code): let it
            new, guard = jobs._prepare(self.treadle, self.config, body, principal, key, trace)
        except Exception:  # nothing is written yet: the full app answers, as always
            self.referred += 1
            await self.app.full(scope, _replay(seen, receive), send)
            return
        self.served += 1
        status = 500  # as the metrics middleware counts a request that raised
        try:
            try:
                handle = (await self.treadle.enqueue_async([new], guard=guard))[0]
            except Exception as exc:
                status = await self._fail(scope, receive, send, exc)
                return
            job, created = handle.job, handle.created
            if created:
                self.metrics.count_enqueued(job.queue)
            status = 202 if created else 200
            response = jobs._job_response(job, status, location=True, replayed=not created)
            await response(scope, receive, send)
        finally:
            counter = self._requests.get(status)
            if counter is None:
                counter = self.metrics.http_requests.labels("POST", PATH, str(status))
            counter.inc()
            self._latency.observe(time.perf_counter() - start)

    async def _accept(self, scope: Scope, receive: Receive, seen: list[Message],
                      ) -> tuple[SubmitJob, Principal, str | None, str | None]:
        """The validated body, principal, idempotency key and traceparent, or ``_Refer``."""
        authorization = content_type = key = length = None
        traces: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = authorization if authorization is not None else value
            elif name == b"content-type":
                content_type = content_type if content_type is not None else value
            elif name == b"idempotency-key":
                if key is not None:
                    raise _Refer
                key = value
            elif name == b"content-length":
                length = value
            elif name == b"traceparent":
                traces.append(value)
        if content_type is None or content_type.lower() not in _JSON_TYPES:
            raise _Refer
        if length is not None and int(length) > self.limit:
            raise _Refer
        principal = await self._principal(scope, authorization)
        idempotency_key = key.decode("latin-1") if key is not None else None
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
            raise _Refer
        raw = await _read_body(receive, seen, self.limit)
        parsed = json.loads(raw)  # as Starlette's Request.json()
        if type(parsed) is not dict:
            raise _Refer
        try:
            body = SubmitJob.model_validate(parsed)
        except ValidationError:
            raise _Refer from None
        trace = traceparent.parse(traces[0].decode("latin-1")) if len(traces) == 1 else None
        return body, principal, idempotency_key, trace

    async def _principal(self, scope: Scope, authorization: bytes | None) -> Principal:
        """``require("submit")``: as ``HTTPBearer(auto_error=False)`` then the key lookup."""
        config = self.config
        raw: str | None = None
        if authorization:
            scheme, credentials = get_authorization_scheme_param(authorization.decode("latin-1"))
            if scheme and credentials and scheme.lower() == "bearer":
                raw = credentials
        if raw is None:
            client = scope.get("client")
            if config.open_loopback and client is not None and client[0] in _LOOPBACK_HOSTS:
                return _LOOPBACK
            raise _Refer  # 401
        if len(raw) <= 512 and _is_admin_key(raw, config):
            return _ADMIN
        # A key read valid recently is not read again (ADR 0033); otherwise it is a
        # database read: in a thread, as the route does it.
        principal = cached_principal(self.treadle, raw, config)
        if principal is None:
            principal = await run_in_threadpool(authenticate, self.treadle, raw, config)
        if principal is None or not principal.allows("submit"):
            raise _Refer  # 401 or 403
        return principal

    async def _fail(self, scope: Scope, receive: Receive, send: Send, exc: Exception) -> int:
        """Answer an error of the commit with the app's own handler for it (as
        ``ExceptionMiddleware`` would); anything unhandled as ``ServerErrorMiddleware``
        does: the 500 handler's answer, then the exception goes on up."""
        handlers = self.app.exception_handlers
        request = Request(scope, receive)
        for cls in type(exc).__mro__:
            if cls is not Exception and cls in handlers:
                response = await _answer(handlers[cls], request, exc)
                await response(scope, receive, send)
                return int(response.status_code)
        crash = handlers.get(Exception) or handlers.get(500)
        if crash is not None:
            response = await _answer(crash, request, exc)
            await response(scope, receive, send)
        raise exc


async def _answer(handler: Any, request: Request, exc: Exception) -> Any:
    """An exception handler's response (Starlette takes sync and async handlers)."""
    response = handler(request, exc)
    return await response if inspect.isawaitable(response) else response


async def _read_body(receive: Receive, seen: list[Message], limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        seen.append(message)
        if message["type"] != "http.request":
            raise _Refer  # the client went away
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _Refer  # the full app's size limit answers 413
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    raw = b"".join(chunks)
    if not raw:
        raise _Refer
    return raw


def _replay(seen: list[Message], receive: Receive) -> Receive:
    """``receive`` as if nothing had been read: ``seen`` first, then the rest."""
    pending = list(seen)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed


def _routes_to_submit(app: FastAPI) -> bool:
    """Whether the app's router sends ``POST /v1/jobs`` to ``jobs.submit_job`` (and not,
    say, to a route added in front of it)."""
    probe: Scope = {"type": "http", "path": PATH, "method": "POST", "root_path": "",
                    "headers": [], "query_string": b""}
    for route in app.router.routes:
        match, _ = route.matches(dict(probe))
        if match == Match.PARTIAL:
            return False
        if match != Match.FULL:
            continue
        selected: Any = route
        # FastAPI 0.165 keeps included routers whole; look inside for the route chosen.
        while isinstance(selected, _IncludedRouter):
            _, _, selected, _ = selected._match(dict(probe))
        return getattr(selected, "endpoint", None) is jobs.submit_job
    return False


def install(app: TreadleAPI, treadle: Treadle, config: ApiConfig, metrics: Metrics,
            renamed: list[RenamedPrefix]) -> None:
    """Turn the fast path on for ``app`` (call after its middleware is added)."""
    app.submit_fast_path = SubmitFastPath(app, treadle, config, metrics, renamed)
