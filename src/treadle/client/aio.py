"""``AsyncClient``: :class:`~treadle.client.Client` for ``asyncio`` (same calls, awaited)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar

import httpx

from treadle.api.models import WorkerOut
from treadle.app import WaitTimeout
from treadle.client import calls
from treadle.client.calls import Call, JobPage, Submitted
from treadle.client.settings import HandleState, Settings, StreamState, finish, request
from treadle.client.sse import MAX_EVENT_ID
from treadle.client.wire import DEFAULT_MAX_RESPONSE_BYTES, error_from
from treadle.core.errors import BadResponse
from treadle.core.job import Job, JobEvent, JobLog
from treadle.core.lifecycle import JobStatus
from treadle.streams.follow import StreamEvent

T = TypeVar("T")


class AsyncRemoteJobHandle(HandleState["AsyncClient"]):
    """A reference to a job on a Treadle server; its methods are coroutines."""

    async def refresh(self) -> Job:
        self.job = await self.client.get_job(self.id)
        return self.job

    async def wait(self, timeout: float = 30.0) -> Job:
        self.job = await self.client.wait(self.id, timeout)
        return self.job

    def stream(self, *, after: int = 0) -> AsyncRemoteJobStream:
        return self.client.stream(self.id, after=after)

    async def cancel(self) -> Job:
        self.job = await self.client.cancel(self.id)
        return self.job

    async def retry(self) -> Job:
        self.job = await self.client.retry(self.id)
        return self.job

    async def events(self) -> list[JobEvent]:
        return await self.client.events(self.id)

    async def logs(self) -> list[JobLog]:
        return await self.client.logs(self.id)


class AsyncRemoteJobStream(StreamState):
    """``async for ev in stream``: the job's events until its ``end``."""

    def __init__(self, client: AsyncClient, job_id: int, after: int = 0,
                 deadline: float | None = None) -> None:
        super().__init__(client.settings, job_id, after, deadline)
        self.client = client

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        self.failures = 0
        while not self.follow.ended:
            progressed = False
            try:
                async with contextlib.aclosing(self._connection()) as connection:
                    async for ev in connection:
                        progressed = True
                        yield ev
            except httpx.TimeoutException as exc:
                if self._expired():
                    raise await self._timeout() from None
                failure: Exception = exc
            except httpx.TransportError as exc:
                failure = exc
            else:
                if self.follow.ended:
                    return
                failure = BadResponse("the stream ended before the job did")
            pause = self._pause(progressed, failure)
            if pause is not None:
                await asyncio.sleep(pause)
            if self._expired():
                raise await self._timeout()

    async def _connection(self) -> AsyncGenerator[StreamEvent, None]:
        path, headers, timeout = self._request()
        async with self.client.http.stream("GET", path, headers=headers,
                                           timeout=timeout) as resp:
            if resp.status_code != 200:
                cap = self._refusal_cap()
                async for chunk in resp.aiter_bytes():
                    cap.add(chunk)
                raise error_from(resp.status_code, resp.headers.get("content-type", ""),
                                 bytes(cap.buf), resp.headers)
            parser = self._parser()
            async for chunk in resp.aiter_bytes():
                for ev in self._feed(parser, chunk):
                    yield ev
                if self.follow.ended:
                    return
                if self._expired():
                    raise await self._timeout()

    async def _timeout(self) -> WaitTimeout:
        return self._timeout_of(await self.client.get_job(self.follow.job_id))


class AsyncClient:
    """``async with AsyncClient(url, key) as client: await client.submit(...)``."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 30.0,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = Settings(base_url, api_key, timeout, max_response_bytes)
        self.http = httpx.AsyncClient(base_url=self.settings.root, transport=transport,
                                      follow_redirects=False)

    def __repr__(self) -> str:
        return f"<AsyncClient {self.settings.root!r}>"

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def send(self, call: Call[T]) -> T:
        req = request(self.settings, call)
        try:
            async with self.http.stream(
                req.method, req.path, content=req.content, params=req.params,
                headers=req.headers, timeout=req.timeout,
            ) as resp:
                async for chunk in resp.aiter_bytes():
                    req.cap.add(chunk)
                status, headers = resp.status_code, resp.headers
        except httpx.TransportError as exc:
            raise req.failed(exc) from None
        return finish(call, status, headers, bytes(req.cap.buf))

    def _handle(self, sub: Submitted) -> AsyncRemoteJobHandle:
        return AsyncRemoteJobHandle(self, sub.job, sub.created)

    async def submit(self, task: str, payload: Mapping[str, Any] | None = None, *,
                     queue: str | None = None, priority: int | None = None,
                     run_at: datetime | None = None, delay: float | None = None,
                     callback_url: str | None = None,
                     idempotency_key: str | None = None,
                     traceparent: str | None = None) -> AsyncRemoteJobHandle:
        return self._handle(await self.send(calls.submit(
            task, payload, queue=queue, priority=priority, run_at=run_at, delay=delay,
            callback_url=callback_url, idempotency_key=idempotency_key,
            trace=traceparent)))

    async def run(self, task: str, payload: Mapping[str, Any] | None = None, *,
                  wait: float = 25.0, queue: str | None = None, priority: int | None = None,
                  callback_url: str | None = None,
                  idempotency_key: str | None = None,
                  traceparent: str | None = None) -> AsyncRemoteJobHandle:
        body = calls.run_task(task, payload, queue=queue, priority=priority,
                              callback_url=callback_url)
        return self._handle(await self.send(calls.run(body, wait, idempotency_key, traceparent)))

    async def run_code(self, code: str, language: Literal["javascript", "python"],
                       input: Any = None, *, limits: Mapping[str, Any] | None = None,
                       wait: float = 25.0,
                       idempotency_key: str | None = None) -> AsyncRemoteJobHandle:
        body = calls.run_code(code, language, input, limits)
        return self._handle(await self.send(calls.run(body, wait, idempotency_key)))

    async def send_event(self, key: str, payload: Any = None) -> int:
        return await self.send(calls.send_event(key, payload))

    async def job(self, job_id: int) -> AsyncRemoteJobHandle:
        return AsyncRemoteJobHandle(self, await self.get_job(job_id), created=False)

    async def get_job(self, job_id: int) -> Job:
        return await self.send(calls.get_job(job_id))

    async def why_not_running(self, job: Job) -> dict[str, Any] | None:
        """For a queued job, the rule that holds it (``{"rule", "message"}``); else None."""
        return await self.send(calls.waiting_on(job.id))

    async def list_jobs(self, *, statuses: list[JobStatus | str] | None = None,
                        queue: str | None = None, task: str | None = None,
                        created_after: datetime | None = None,
                        created_before: datetime | None = None,
                        cursor: int | None = None, limit: int = 50) -> JobPage:
        return await self.send(calls.list_jobs(
            statuses=statuses, queue=queue, task=task, created_after=created_after,
            created_before=created_before, cursor=cursor, limit=limit))

    async def wait(self, job_id: int, timeout: float = 30.0) -> Job:
        stream = AsyncRemoteJobStream(self, job_id, after=MAX_EVENT_ID,
                                      deadline=time.monotonic() + timeout)
        async for ev in stream:
            if ev.job is not None:
                return ev.job
        raise BadResponse("the stream ended without the final record")  # pragma: no cover

    def stream(self, job_id: int, *, after: int = 0) -> AsyncRemoteJobStream:
        return AsyncRemoteJobStream(self, job_id, after=after)

    async def events(self, job_id: int) -> list[JobEvent]:
        return await self.send(calls.events(job_id))

    async def logs(self, job_id: int) -> list[JobLog]:
        return await self.send(calls.logs(job_id))

    async def cancel(self, job_id: int) -> Job:
        return await self.send(calls.cancel(job_id))

    async def retry(self, job_id: int) -> Job:
        return await self.send(calls.retry(job_id))

    async def release(self, job_id: int) -> Job:
        """Release a quarantined job (ADR 0015): queued again, its crash count reset."""
        return await self.send(calls.release(job_id))

    async def discard(self, job_id: int) -> Job:
        """Discard a quarantined job (ADR 0015): failed for good."""
        return await self.send(calls.discard(job_id))

    async def register_dynamic_worker(self, code: str, language: Literal["javascript", "python"], *,
                              name: str | None = None, limits: Mapping[str, Any] | None = None,
                              allow_wasm: bool = False, fetch_allow: list[str] | None = None,
                              kv: bool = False) -> WorkerOut:
        return await self.send(calls.register_dynamic_worker(
            code, language, name=name, limits=limits, allow_wasm=allow_wasm,
            fetch_allow=fetch_allow, kv=kv))

    async def get_dynamic_worker(self, worker_id: str) -> WorkerOut:
        return await self.send(calls.get_dynamic_worker(worker_id))

    async def list_dynamic_workers(self, *, limit: int = 100) -> list[WorkerOut]:
        return await self.send(calls.list_dynamic_workers(limit))

    async def run_dynamic_worker(self, worker_id: str, input: Any = None, *,
                         mode: Literal["load", "get"] = "load",
                         limits: Mapping[str, Any] | None = None, wait: float = 25.0,
                         sync: bool = True,
                         idempotency_key: str | None = None) -> AsyncRemoteJobHandle:
        return self._handle(await self.send(calls.run_dynamic_worker(
            worker_id, input, mode=mode, limits=limits, wait=wait, sync=sync,
            idempotency_key=idempotency_key)))
