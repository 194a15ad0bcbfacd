"""The remote client (ADR 0020) against a real server (uvicorn in a thread, a real worker),
on SQLite and PostgreSQL: the library's records and exceptions come back over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.api.conftest import Api, api_worker
from tests.support.aio import run_async
from treadle.app import WaitTimeout
from treadle.client import AsyncClient, Client
from treadle.context import JobContext
from treadle.core.errors import (
    AccessDenied,
    IllegalTransition,
    InvalidInput,
    JobNotFound,
    Transient,
    UnknownTask,
)
from treadle.core.job import Job, JobEvent, JobLog
from treadle.core.lifecycle import JobStatus
from treadle.worker import Worker


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # never leave a worker thread blocked


def _tasks(api: Api, gate: threading.Event) -> None:
    @api.treadle.task(name="chatter", retries=0, pass_context=True, timeout=60)
    def chatter(n: int, hold: int, ctx: JobContext) -> int:
        for i in range(n):
            if i == hold:
                gate.wait(30)
            ctx.emit("token", {"i": i})
        ctx.log("said everything")
        return n


@pytest.fixture
def served(api: Api, gate: threading.Event) -> Iterator[tuple[Api, Worker]]:
    _tasks(api, gate)
    with api_worker(api.treadle) as w:
        yield api, w


def _client(api: Api, key: str = "a", **kw: Any) -> Client:
    return Client(api.url, api.keys.get(key, key), **kw)


def test_submit_wait_read_like_the_library(served: tuple[Api, Worker]) -> None:
    api, _ = served
    with _client(api) as c:
        h = c.submit("add", {"a": 2, "b": 3}, idempotency_key="sum-1")
        assert h.created and isinstance(h.job, Job) and h.job.tenant == "tenant-a"
        job = h.wait(timeout=20)
        assert job.status is JobStatus.SUCCEEDED and job.result == 5
        # The record the library reads (lease token and flow key are not API fields).
        assert job.to_json() == api.treadle.get_job(h.id).to_json()
        again = c.submit("add", {"a": 2, "b": 3}, idempotency_key="sum-1")
        assert again.id == h.id and not again.created
        events = c.events(h.id)
        assert all(isinstance(e, JobEvent) for e in events)
        assert [e.reason for e in events] == [e.reason for e in api.treadle.job_events(h.id)]
        ran = c.run("echo", {"x": [1, {"y": None}]}, wait=10)
        assert ran.job.is_finished and ran.job.result == {"x": [1, {"y": None}]}
        page = c.list_jobs(statuses=["succeeded"], limit=1)
        assert [j.id for j in page.jobs] == [ran.id] and page.next_cursor == ran.id
        older = c.list_jobs(statuses=[JobStatus.SUCCEEDED], cursor=page.next_cursor)
        assert [j.id for j in older.jobs] == [h.id]


def test_stream_logs_cancel_retry(served: tuple[Api, Worker], gate: threading.Event) -> None:
    api, _ = served
    with _client(api) as c:
        h = c.submit("chatter", {"n": 50, "hold": 10})
        seen: list[int] = []
        kinds: list[str] = []
        for ev in h.stream():
            kinds.append(ev.event)
            if ev.item is not None and ev.item.kind == "token":
                seen.append(ev.item.data["i"])
                if ev.item.data["i"] == 9:
                    gate.set()  # the rest arrives live
            if ev.job is not None:
                assert ev.job.result == 50
        assert seen == list(range(50)) and kinds[0] == "state" and kinds[-1] == "end"
        assert [entry.message for entry in c.logs(h.id)] == ["said everything"]
        assert all(isinstance(entry, JobLog) for entry in c.logs(h.id))
        # A late reader resumes after any position, like Last-Event-ID.
        tail = [ev.item.seq for ev in c.stream(h.id, after=45) if ev.item is not None]
        assert tail and tail[0] == 46
        delayed = c.submit("noop", delay=3600)
        cancelled = delayed.cancel()
        assert cancelled.status is JobStatus.CANCELLED
        with pytest.raises(IllegalTransition) as info:
            c.cancel(delayed.id)
        assert info.value.detail["status"] == 409
        assert info.value.detail["type"] == "urn:treadle:problem:job-finished"
        assert info.value.detail["job"] == {"id": delayed.id, "status": "cancelled"}
        # Queued again (a worker may already have run it by the time the answer is read).
        assert delayed.retry().status is not JobStatus.CANCELLED
        assert "manual_retry" in [e.reason for e in delayed.events()]


def test_errors_are_the_librarys_exceptions(served: tuple[Api, Worker]) -> None:
    api, _ = served
    with _client(api) as c:
        with pytest.raises(UnknownTask) as unknown:
            c.submit("nope")
        assert unknown.value.detail["type"] == "urn:treadle:problem:unknown-task"
        assert unknown.value.detail["instance"] == "/v1/jobs"
        with pytest.raises(InvalidInput) as bad:
            c.submit("echo", {"text": "\ud800"})  # a lone surrogate cannot be stored
        assert bad.value.detail["status"] == 422
        with pytest.raises(InvalidInput):
            c.submit("echo", {"x": float("nan")})  # refused before sending
        with pytest.raises(JobNotFound):
            c.get_job(2**62)
        with pytest.raises(InvalidInput):
            c.get_job(0)
        boom = c.submit("boom")
        failed = boom.wait(20)
        assert failed.status is JobStatus.FAILED and failed.error is not None
        assert failed.error.message == "boom"
        done = c.submit("noop")
        done.wait(20)
        with pytest.raises(IllegalTransition) as not_retryable:
            done.retry()
        assert not_retryable.value.detail["type"] == "urn:treadle:problem:not-retryable"
    with Client(api.url, "not-a-key") as wrong, pytest.raises(AccessDenied) as denied:
        wrong.get_job(1)
    assert denied.value.detail["status"] == 401
    with _client(api, "a_read") as reader, pytest.raises(AccessDenied) as scope:
        reader.submit("noop")
    assert scope.value.detail["status"] == 403


def test_tenants_see_only_their_jobs(served: tuple[Api, Worker]) -> None:
    api, _ = served
    with _client(api, "a") as a, _client(api, "b") as b:
        mine = a.submit("noop")
        mine.wait(20)
        with pytest.raises(JobNotFound):
            b.get_job(mine.id)
        for call in (b.events, b.logs, b.cancel, b.retry):
            with pytest.raises(JobNotFound):
                call(mine.id)
        with pytest.raises(JobNotFound):
            list(b.stream(mine.id))
        with pytest.raises(JobNotFound):
            b.wait(mine.id, 5)
        assert mine.id not in [j.id for j in b.list_jobs().jobs]
        assert mine.id in [j.id for j in a.list_jobs().jobs]


def test_wait_times_out_with_the_librarys_error(api: Api) -> None:
    # No worker: the job stays queued.
    with _client(api) as c:
        h = c.submit("noop")
        with pytest.raises(WaitTimeout) as info:
            h.wait(timeout=0.5)
        assert info.value.detail == {"id": h.id, "status": "queued"}


def test_unreachable_server_is_transient() -> None:
    from tests.support.pg import free_port

    with Client(f"http://127.0.0.1:{free_port()}", "k", timeout=2) as c, \
            pytest.raises(Transient, match="cannot reach Treadle"):
        c.get_job(1)


def test_async_client(served: tuple[Api, Worker], gate: threading.Event) -> None:
    api, _ = served
    gate.set()

    async def main() -> None:
        async with AsyncClient(api.url, api.keys["a"]) as c, \
                AsyncClient(api.url, api.keys["b"]) as other:
            h = await c.submit("add", {"a": 1, "b": 1})
            assert (await h.wait(20)).result == 2
            s = await c.submit("chatter", {"n": 20, "hold": -1})
            items = [ev.item.data["i"] async for ev in s.stream()
                     if ev.item is not None and ev.item.kind == "token"]
            assert items == list(range(20))
            assert (await s.refresh()).status is JobStatus.SUCCEEDED
            assert [entry.message for entry in await s.logs()] == ["said everything"]
            ran = await c.run("echo", {"k": "v"}, wait=10)
            assert ran.job.result == {"k": "v"}
            page = await c.list_jobs(limit=2)
            assert [j.id for j in page.jobs] == [ran.id, s.id]
            with pytest.raises(JobNotFound):
                await other.get_job(h.id)
            with pytest.raises(JobNotFound):
                async for _ in other.stream(h.id):
                    pass
            with pytest.raises(UnknownTask):
                await c.submit("nope")
            delayed = await c.submit("noop", delay=3600)
            assert (await delayed.cancel()).status is JobStatus.CANCELLED
            with pytest.raises(IllegalTransition):
                await delayed.cancel()
            assert (await delayed.retry()).status is not JobStatus.CANCELLED
            assert "manual_retry" in [e.reason for e in await delayed.events()]

    run_async(main())


def test_submissions_carry_the_callers_trace(api: Api) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with _client(api) as c:
        assert api.treadle.get_job(c.submit("noop").id).traceparent is None
        assert api.treadle.get_job(c.submit("noop", traceparent=given).id).traceparent == given
        ran = c.run("noop", wait=0, traceparent=given)
        assert api.treadle.get_job(ran.id).traceparent == given
        with pytest.raises(InvalidInput):
            c.submit("noop", traceparent="00-nope")  # refused before sending
        tracer = TracerProvider().get_tracer("web")
        with tracer.start_as_current_span("request") as span:  # a trace started upstream
            inside = c.submit("noop")
        ctx = span.get_span_context()
        assert api.treadle.get_job(inside.id).traceparent == (
            f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}")
