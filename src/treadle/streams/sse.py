"""``GET /v1/jobs/{id}/stream``: a job's live stream as Server-Sent Events.

Events: ``state`` (status and attempt, first and on every change), ``item`` (a stream
item: log line, progress, emitted data, ``trimmed`` marker; its ``id`` is the item's
sequence number) and ``end`` (the final job record, after the last item). A client that
reconnects sends ``Last-Event-ID`` (browsers do it themselves) and gets what follows,
replayed from the database, then live from the process's hub (``hub.py``). The UI serves
the same stream under its own session (``event_stream``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from treadle.api.jobs import Reader, _path_id
from treadle.api.problems import Problem
from treadle.core.job import Job
from treadle.core.lifecycle import JobStatus
from treadle.streams.hub import fill_gap, hub_for
from treadle.streams.model import StreamItem
from treadle.streams.repo import Head

if TYPE_CHECKING:
    from treadle.app import Treadle

KEEPALIVE_SECONDS = 15.0
MAX_EVENT_ID = 1 << 62
router = APIRouter(prefix="/v1", tags=["jobs"])


def frame(event: str, data: Any, event_id: int | None = None) -> bytes:
    # json.dumps escapes newlines, so data is always one ``data:`` line.
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {text}\n\n".encode()


def _state(head: Head) -> dict[str, Any]:
    return {"job_id": head.job_id, "status": head.status, "attempt": head.attempt}


def _terminal(status: str) -> bool:
    return JobStatus(status).is_terminal


def parse_after(last_event_id: str | None, after: int | None) -> int:
    value: Any = last_event_id if last_event_id is not None else after
    if value is None:
        return 0
    try:
        n = int(str(value).strip())
    except ValueError:
        raise Problem(422, "Last-Event-ID must be a stream sequence number") from None
    if not 0 <= n <= MAX_EVENT_ID:
        raise Problem(422, "Last-Event-ID is out of range")
    return n


async def event_stream(treadle: Treadle, job: Job, after: int,
                       tenant: str | None) -> AsyncIterator[bytes]:
    """Replay the stream after ``after``, then follow it live; ends with the record."""
    hub = hub_for(treadle)
    sub = await run_in_threadpool(hub.subscribe, job.id, asyncio.get_running_loop())
    try:
        yield b"retry: 1000\n\n"
        cursor = after
        head = sub.start
        yield frame("state", _state(head), cursor)
        while cursor < head.last_seq:  # replay what was stored before we subscribed
            page = await run_in_threadpool(hub.repo.read, job.id, cursor, 1000)
            if not page:
                break
            for item in fill_gap(page, cursor):
                yield frame("item", item.to_json(), item.seq)
            cursor = page[-1].seq
        status = head.status
        while not _terminal(status):
            try:
                event = await asyncio.wait_for(sub.queue.get(), KEEPALIVE_SECONDS)
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            if event is None:
                return  # too far behind: the client reconnects with Last-Event-ID
            if isinstance(event, StreamItem):
                if event.seq > cursor:
                    yield frame("item", event.to_json(), event.seq)
                    cursor = event.seq
            else:
                if event.status != status or event.attempt != head.attempt:
                    yield frame("state", _state(event), cursor)
                status, head = event.status, event
        final = await run_in_threadpool(lambda: treadle.get_job(job.id, tenant=tenant))
        yield frame("end", final.to_json(), cursor)
    finally:
        hub.unsubscribe(sub)


def sse_response(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers={
        "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get(
    "/jobs/{job_id}/stream", summary="Follow a job live (Server-Sent Events)",
    response_class=StreamingResponse,
    # Each event's data is JSON (a state, an item, or the final job record).
    responses={200: {"content": {"text/event-stream": {"schema": {
        "description": "events state, item (id = seq) and end, each with JSON data"}}}}},
)
async def job_stream(
    request: Request, job_id: int, principal: Reader,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)] = None,
    after: Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID,
                                       description="Resume after this item")] = None,
) -> StreamingResponse:
    treadle: Treadle = request.app.state.treadle
    start = parse_after(last_event_id, after)
    job = await run_in_threadpool(
        lambda: treadle.get_job(_path_id(job_id), tenant=principal.tenant))  # 404: other tenant
    return sse_response(event_stream(treadle, job, start, principal.tenant))
