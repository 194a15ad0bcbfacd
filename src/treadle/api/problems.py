"""One error envelope for everything: ``application/problem+json`` (RFC 9457).

Every error a client can see, including FastAPI's own 404/405/422 and an
unexpected crash, leaves through these handlers with a machine ``type``
(``urn:treadle:problem:<slug>``), a human ``title`` and ``detail``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from treadle.core.errors import (
    ConfigurationError,
    IllegalTransition,
    InvalidInput,
    JobNotFound,
    StoreUnavailable,
    TreadleError,
    UnknownTask,
)

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("treadle.api")

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Invalid input",
    500: "Internal server error",
    503: "Service unavailable",
}
_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-input",
    500: "internal",
    503: "unavailable",
}


class Problem(Exception):
    """Raise anywhere in a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug or _SLUGS.get(status, "error")
        self.title = title or _TITLES.get(status, "Error")
        self.headers = headers
        self.extra = extra


class BodyTooLarge(StarletteHTTPException):
    """Raised while a body is read; an HTTPException so FastAPI passes it through."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds the limit of {limit} bytes")


def problem_response(request: Request | None, p: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:treadle:problem:{p.slug}",
        "title": p.title,
        "status": p.status,
        "detail": p.detail,
    }
    if request is not None:
        body["instance"] = request.url.path
    body.update(p.extra)
    return JSONResponse(body, status_code=p.status, headers=p.headers, media_type=PROBLEM_JSON)


def from_treadle_error(exc: TreadleError) -> Problem:
    extra: dict[str, Any] = {"error_class": exc.error_class.value}
    if exc.detail is not None:
        extra["error_detail"] = exc.detail
    if isinstance(exc, JobNotFound):
        return Problem(404, exc.message, slug="job-not-found", **extra)
    if isinstance(exc, UnknownTask):
        return Problem(422, exc.message, slug="unknown-task", **extra)
    if isinstance(exc, InvalidInput | ConfigurationError):
        return Problem(422, exc.message, **extra)
    if isinstance(exc, IllegalTransition):
        return Problem(409, exc.message, **extra)
    if isinstance(exc, StoreUnavailable):
        # Do not echo connection strings or driver messages to clients.
        return Problem(503, "the database is unavailable; retry shortly",
                       headers={"Retry-After": "1"}, error_class=exc.error_class.value)
    log.error("unexpected Treadle error: %r", exc)
    return Problem(500, "internal error", error_class=exc.error_class.value)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ())]
        out.append({"loc": loc, "message": str(err.get("msg", "")), "type": err.get("type")})
    return out[:50]


def install(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(request, exc)

    async def on_treadle(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TreadleError)
        return problem_response(request, from_treadle_error(exc))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _validation_errors(exc)
        if any(e["type"] == "json_invalid" for e in errors):
            detail = "request body is not valid JSON"
        else:
            first = errors[0] if errors else {"loc": [], "message": "invalid request"}
            detail = f"{'.'.join(first['loc'])}: {first['message']}"
        return problem_response(request, Problem(422, detail, errors=errors))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "")
        headers = dict(exc.headers) if exc.headers else None
        return problem_response(request, Problem(exc.status_code, detail, headers=headers))

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        # Database errors arrive as TreadleErrors (the stores translate their drivers'):
        # a value out of range is ValueOutOfRange, a 422 like any invalid input.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(request, Problem(500, "internal error"))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(TreadleError, on_treadle)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
