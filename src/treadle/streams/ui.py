"""The UI's job page follows the job's stream: ``/ui/jobs/{id}/stream`` (SSE).

The same events as ``GET /v1/jobs/{id}/stream`` under the UI's own session (a browser's
``EventSource`` cannot send an API key), scoped to the session's tenant. The page's
script (``static/app.js``) opens it for a job that has not finished and appends log
lines, moves the progress bar and lists emitted items as they arrive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from treadle.api.problems import Problem
from treadle.core.errors import JobNotFound
from treadle.streams.sse import event_stream, parse_after, sse_response
from treadle.ui.web import is_id

if TYPE_CHECKING:
    from treadle.ui.web import UIContext


def register(router: APIRouter, ctx: UIContext) -> None:
    @router.get("/ui/jobs/{job_id}/stream", include_in_schema=False)
    async def job_stream(request: Request, job_id: int) -> Response:
        user = ctx.user(request)
        if user is None:
            return Response(status_code=401)
        try:
            start = parse_after(request.headers.get("Last-Event-ID"), None)
        except Problem:
            return Response(status_code=422)
        tenant = user.tenant_filter
        if not is_id(job_id):
            return Response(status_code=404)
        try:
            job = await run_in_threadpool(lambda: ctx.store.get_job(job_id, tenant=tenant))
        except JobNotFound:
            return Response(status_code=404)
        return sse_response(event_stream(ctx.treadle, job, start, tenant))
