"""``Client``: the library's shape over HTTP, for producers without database access.

``Client(base_url, api_key)`` answers with the library's own records (``Job``,
``JobEvent``, ``JobLog``, ``StreamEvent``) and raises the library's exceptions (ADR 0020).
Submissions return a :class:`RemoteJobHandle` that, like ``JobHandle``, has ``wait()``
and ``stream()``; both follow ``GET /v1/jobs/{id}/stream`` (no polling) and resume with
``Last-Event-ID`` after a dropped connection.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator, Iterator, Mapping
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


class RemoteJobHandle(HandleState["Client"]):
    """A reference to a job on a Treadle server (``JobHandle``'s shape)."""

    def refresh(self) -> Job:
        self.job = self.client.get_job(self.id)
        return self.job

    def wait(self, timeout: float = 30.0) -> Job:
        self.job = self.client.wait(self.id, timeout)
        return self.job

    def stream(self, *, after: int = 0) -> RemoteJobStream:
        return self.client.stream(self.id, after=after)

    def cancel(self) -> Job:
        self.job = self.client.cancel(self.id)
        return self.job

    def retry(self) -> Job:
        self.job = self.client.retry(self.id)
        return self.job

    def events(self) -> list[JobEvent]:
        return self.client.events(self.id)

    def logs(self) -> list[JobLog]:
        return self.client.logs(self.id)


class RemoteJobStream(StreamState):
    """Iterate a job's stream events until its ``end`` (reconnecting as needed)."""

    def __init__(self, client: Client, job_id: int, after: int = 0,
                 deadline: float | None = None) -> None:
        super().__init__(client.settings, job_id, after, deadline)
        self.client = client

    def __iter__(self) -> Iterator[StreamEvent]:
        self.failures = 0
        while not self.follow.ended:
            progressed = False
            try:
                with contextlib.closing(self._connection()) as connection:
                    for ev in connection:
                        progressed = True
                        yield ev
            except httpx.TimeoutException as exc:
                if self._expired():
                    raise self._timeout() from None
                failure: Exception = exc
            except httpx.TransportError as exc:
                failure = exc
            else:
                if self.follow.ended:
                    return
                failure = BadResponse("the stream ended before the job did")
            pause = self._pause(progressed, failure)
            if pause is not None:
                time.sleep(pause)
            if self._expired():
                raise self._timeout()

    def _connection(self) -> Generator[StreamEvent, None, None]:
        path, headers, timeout = self._request()
        with self.client.http.stream("GET", path, headers=headers, timeout=timeout) as resp:
            if resp.status_code != 200:
                cap = self._refusal_cap()
                for chunk in resp.iter_bytes():
                    cap.add(chunk)
                raise error_from(resp.status_code, resp.headers.get("content-type", ""),
                                 bytes(cap.buf), resp.headers)
            parser = self._parser()
            for chunk in resp.iter_bytes():
                yield from self._feed(parser, chunk)
                if self.follow.ended:
                    return
                if self._expired():
                    raise self._timeout()

    def _timeout(self) -> WaitTimeout:
        return self._timeout_of(self.client.get_job(self.follow.job_id))


class Client:
    """``Client("http://127.0.0.1:8787", api_key)``; close it (or use ``with``)."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout: float = 30.0,
                 max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.settings = Settings(base_url, api_key, timeout, max_response_bytes)
        self.http = httpx.Client(base_url=self.settings.root, transport=transport,
                                 follow_redirects=False)

    def __repr__(self) -> str:
        return f"<Client {self.settings.root!r}>"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, call: Call[T]) -> T:
        req = request(self.settings, call)
        try:
            with self.http.stream(req.method, req.path, content=req.content, params=req.params,
                                  headers=req.headers, timeout=req.timeout) as resp:
                for chunk in resp.iter_bytes():
                    req.cap.add(chunk)
                status, headers = resp.status_code, resp.headers
        except httpx.TransportError as exc:
            raise req.failed(exc) from None
        return finish(call, status, headers, bytes(req.cap.buf))

    def _handle(self, sub: Submitted) -> RemoteJobHandle:
        return RemoteJobHandle(self, sub.job, sub.created)

    # -- producing ---------------------------------------------------------------

    def submit(self, task: str, payload: Mapping[str, Any] | None = None, *,
               queue: str | None = None, priority: int | None = None,
               run_at: datetime | None = None, delay: float | None = None,
               callback_url: str | None = None,
               idempotency_key: str | None = None,
               traceparent: str | None = None) -> RemoteJobHandle:
        """Enqueue a job of ``task`` (``POST /v1/jobs``). The job continues ``traceparent``
        (W3C), or the current OpenTelemetry span's when one is active (ADR 0021)."""
        return self._handle(self.send(calls.submit(
            task, payload, queue=queue, priority=priority, run_at=run_at, delay=delay,
            callback_url=callback_url, idempotency_key=idempotency_key,
            trace=traceparent)))

    def run(self, task: str, payload: Mapping[str, Any] | None = None, *, wait: float = 25.0,
            queue: str | None = None, priority: int | None = None,
            callback_url: str | None = None,
            idempotency_key: str | None = None,
            traceparent: str | None = None) -> RemoteJobHandle:
        """Submit and wait up to ``wait`` s (capped by the server) in one request
        (``POST /v1/run``); ``handle.job.is_finished`` says whether it finished."""
        body = calls.run_task(task, payload, queue=queue, priority=priority,
                              callback_url=callback_url)
        return self._handle(self.send(calls.run(body, wait, idempotency_key, traceparent)))

    def run_code(self, code: str, language: Literal["javascript", "python"],
                 input: Any = None, *, limits: Mapping[str, Any] | None = None,
                 wait: float = 25.0, idempotency_key: str | None = None) -> RemoteJobHandle:
        """Run inline code once in a fresh sandbox (``POST /v1/run`` with ``code``)."""
        body = calls.run_code(code, language, input, limits)
        return self._handle(self.send(calls.run(body, wait, idempotency_key)))

    def send_event(self, key: str, payload: Any = None) -> int:
        """Wake the workflows waiting on ``key`` (``POST /v1/events``); the event's id."""
        return self.send(calls.send_event(key, payload))

    # -- reading and steering ------------------------------------------------------

    def job(self, job_id: int) -> RemoteJobHandle:
        return RemoteJobHandle(self, self.get_job(job_id), created=False)

    def get_job(self, job_id: int) -> Job:
        return self.send(calls.get_job(job_id))

    def why_not_running(self, job: Job) -> dict[str, Any] | None:
        """For a queued job, the rule that holds it (``{"rule", "message"}``); else None."""
        return self.send(calls.waiting_on(job.id))

    def list_jobs(self, *, statuses: list[JobStatus | str] | None = None,
                  queue: str | None = None, task: str | None = None,
                  created_after: datetime | None = None,
                  created_before: datetime | None = None,
                  cursor: int | None = None, limit: int = 50) -> JobPage:
        return self.send(calls.list_jobs(
            statuses=statuses, queue=queue, task=task, created_after=created_after,
            created_before=created_before, cursor=cursor, limit=limit))

    def wait(self, job_id: int, timeout: float = 30.0) -> Job:
        """Block until the job is finished; ``WaitTimeout`` after ``timeout`` seconds."""
        stream = RemoteJobStream(self, job_id, after=MAX_EVENT_ID,
                                 deadline=time.monotonic() + timeout)
        for ev in stream:
            if ev.job is not None:
                return ev.job
        raise BadResponse("the stream ended without the final record")  # pragma: no cover

    def stream(self, job_id: int, *, after: int = 0) -> RemoteJobStream:
        return RemoteJobStream(self, job_id, after=after)

    def events(self, job_id: int) -> list[JobEvent]:
        return self.send(calls.events(job_id))

    def logs(self, job_id: int) -> list[JobLog]:
        return self.send(calls.logs(job_id))

    def cancel(self, job_id: int) -> Job:
        return self.send(calls.cancel(job_id))

    def retry(self, job_id: int) -> Job:
        return self.send(calls.retry(job_id))

    def release(self, job_id: int) -> Job:
        """Release a quarantined job (ADR 0015): queued again, its crash count reset."""
        return self.send(calls.release(job_id))

    def discard(self, job_id: int) -> Job:
        """Discard a quarantined job (ADR 0015): failed for good."""
        return self.send(calls.discard(job_id))

    # -- dynamic workers -------------------------------------------------------------

    def register_dynamic_worker(self, code: str, language: Literal["javascript", "python"], *,
                        name: str | None = None, limits: Mapping[str, Any] | None = None,
                        allow_wasm: bool = False, fetch_allow: list[str] | None = None,
                        kv: bool = False) -> WorkerOut:
        return self.send(calls.register_dynamic_worker(code, language, name=name, limits=limits,
                                               allow_wasm=allow_wasm,
                                               fetch_allow=fetch_allow, kv=kv))

    def get_dynamic_worker(self, worker_id: str) -> WorkerOut:
        return self.send(calls.get_dynamic_worker(worker_id))

    def list_dynamic_workers(self, *, limit: int = 100) -> list[WorkerOut]:
        return self.send(calls.list_dynamic_workers(limit))

    def run_dynamic_worker(self, worker_id: str, input: Any = None, *,
                   mode: Literal["load", "get"] = "load",
                   limits: Mapping[str, Any] | None = None, wait: float = 25.0,
                   sync: bool = True, idempotency_key: str | None = None) -> RemoteJobHandle:
        """One run of a registered worker as a job; ``sync=False`` answers at once."""
        return self._handle(self.send(calls.run_dynamic_worker(
            worker_id, input, mode=mode, limits=limits, wait=wait, sync=sync,
            idempotency_key=idempotency_key)))

