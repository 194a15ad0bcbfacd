"""``handle.stream()``: follow a job's stream from the database, in-process.

The library reads the tables directly (it has the store): replay after ``after``, then
follow until the job ends, yielding ``state``, ``item`` and finally ``end`` events, the
same events the SSE endpoint sends. Between reads it waits on the store's completion
signal (``wait_for_finish``: a notification on PostgreSQL, the change counter on
SQLite) for at most ``poll`` seconds, so a finished job ends the stream at once.
Iterate it (``for ev in handle.stream()``) or ``async for`` it (reads run in a thread).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from treadle.core.job import Job
from treadle.core.lifecycle import JobStatus
from treadle.streams.hub import fill_gap
from treadle.streams.model import StreamItem
from treadle.streams.repo import StreamRepo

if TYPE_CHECKING:
    from treadle.app import Treadle


@dataclass(frozen=True)
class StreamEvent:
    event: Literal["state", "item", "end"]
    seq: int  # the resume position (Last-Event-ID) after this event
    status: str
    attempt: int
    item: StreamItem | None = None  # for "item"
    job: Job | None = None  # for "end": the final record


class JobStream:
    def __init__(self, app: Treadle, job_id: int, *, after: int = 0,
                 poll: float = 0.05) -> None:
        self.app = app
        self.job_id = job_id
        self.after = after
        self.poll = poll
        self.repo = StreamRepo(app.store)

    def __iter__(self) -> Iterator[StreamEvent]:
        cursor = self.after
        status, attempt = "", -1
        while True:
            head = self.repo.heads([self.job_id]).get(self.job_id)
            if head is None:
                return  # deleted (retention) while followed
            if (head.status, head.attempt) != (status, attempt):
                status, attempt = head.status, head.attempt
                yield StreamEvent("state", cursor, status, attempt)
            while cursor < head.last_seq:
                page = self.repo.read(self.job_id, cursor, 1000)
                if not page:
                    break
                for item in fill_gap(page, cursor):
                    yield StreamEvent("item", item.seq, status, attempt, item=item)
                cursor = page[-1].seq
            if JobStatus(head.status).is_terminal:
                yield StreamEvent("end", cursor, status, attempt,
                                  job=self.app.get_job(self.job_id))
                return
            self.app.store.wait_for_finish([self.job_id], self.poll)

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        it = iter(self)
        done = object()
        while True:
            ev = await asyncio.to_thread(next, it, done)
            if ev is done:
                return
            assert isinstance(ev, StreamEvent)
            yield ev
