"""The remote client against a server that misbehaves (a real uvicorn serving hostile
answers) and a connection that drops mid-stream (a real TCP proxy that cuts it): a clear
typed error or a transparent resume, never a hang."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.e2e.api.conftest import Api, api_worker
from tests.support.aio import run_async
from tests.support.pg import free_port
from treadle.client import AsyncClient, Client
from treadle.context import JobContext
from treadle.core.errors import BadResponse, RateLimited, Transient

STOP = threading.Event()


async def _endless(chunk: bytes, pause: float = 0.0) -> AsyncIterator[bytes]:
    while not STOP.is_set():
        yield chunk
        await asyncio.sleep(pause)


async def hostile(request: Request) -> Response:
    case = request.path_params["case"]
    ctype = "application/json"
    if case == "huge":  # never ends: 64 KiB chunks forever
        return StreamingResponse(_endless(b"a" * 65536), media_type=ctype)
    if case == "trickle":  # one byte every 50 ms: each read is quick, the whole is not
        return StreamingResponse(_endless(b" ", 0.05), media_type=ctype)
    if case == "silent":  # headers, then nothing
        return StreamingResponse(_endless(b"", 0.05), media_type=ctype)
    bodies = {
        "invalid": b'{"id": 1, "queue": ',
        "deep": b"[" * 10_000 + b"]" * 10_000,
        "nan": b'{"id": NaN}',
        "shape": b'{"id": "one", "status": "exploded"}',
    }
    if case in bodies:
        return Response(bodies[case], media_type=ctype)
    if case == "html500":
        return Response(b"<html>bad gateway</html>", status_code=502, media_type="text/html")
    if case == "slowdown":
        return Response(b'{"type":"urn:treadle:problem:slow","title":"Too many","status":429,'
                        b'"detail":"slow down"}', status_code=429,
                        media_type="application/problem+json", headers={"Retry-After": "7"})
    return Response(status_code=404)


async def hostile_stream(request: Request) -> Response:
    case = request.path_params["case"]
    if case == "longline":
        return StreamingResponse(_endless(b"data: " + b"x" * 65536),
                                 media_type="text/event-stream")
    body = b'event: item\nid: 1\ndata: {"seq": 1, "attempt": \n\n'
    return Response(body, media_type="text/event-stream")


@pytest.fixture(scope="module")
def bad_server() -> Iterator[str]:
    STOP.clear()
    app = Starlette(routes=[Route("/v1/jobs/{case}/stream", hostile_stream),
                            Route("/v1/jobs/{case}", hostile)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    STOP.set()
    server.should_exit = True
    thread.join(10)


def _get(c: Client, case: str) -> object:
    # The hostile cases are addressed by name; the client's methods take ids.
    from treadle.client.calls import Call
    from treadle.client.wire import job_from

    return c.send(Call("GET", f"/v1/jobs/{case}", lambda a: job_from(a.data)))


@pytest.mark.parametrize("case,error,match", [
    ("huge", BadResponse, "over 1048576 bytes"),
    ("invalid", BadResponse, "not valid JSON"),
    ("deep", BadResponse, "not valid JSON"),
    ("nan", BadResponse, "not valid JSON"),
    ("shape", BadResponse, "does not match the API"),
    ("trickle", Transient, "took longer than"),
    ("silent", Transient, "no answer"),
    ("html500", Transient, "bad gateway"),
])
def test_hostile_answers_are_clear_errors(bad_server: str, case: str,
                                          error: type[Exception], match: str) -> None:
    started = time.monotonic()
    with Client(bad_server, "k", timeout=1.0, max_response_bytes=1 << 20) as c, \
            pytest.raises(error, match=match):
        _get(c, case)
    assert time.monotonic() - started < 10  # bounded by the client's own limits


def test_rate_limited_answer_carries_retry_after(bad_server: str) -> None:
    with Client(bad_server, "k") as c, pytest.raises(RateLimited) as info:
        _get(c, "slowdown")
    assert info.value.retry_after == 7
    assert info.value.detail["detail"] == "slow down" and info.value.detail["status"] == 429


def test_hostile_streams(bad_server: str) -> None:
    from treadle.client.sync import RemoteJobStream

    with Client(bad_server, "k", timeout=1.0, max_response_bytes=1 << 20) as c:
        stream = RemoteJobStream(c, 1)
        stream.follow.job_id = "longline"  # type: ignore[assignment]
        with pytest.raises(BadResponse, match="stream line is longer"):
            list(stream)
        broken = RemoteJobStream(c, 1)
        broken.follow.job_id = "badjson"  # type: ignore[assignment]
        with pytest.raises(BadResponse, match="not valid JSON"):
            list(broken)


def test_async_hostile(bad_server: str) -> None:
    from treadle.client.calls import Call
    from treadle.client.wire import job_from

    async def main() -> None:
        async with AsyncClient(bad_server, "k", timeout=1.0,
                               max_response_bytes=1 << 20) as c:
            for case, error in (("huge", BadResponse), ("deep", BadResponse),
                                ("silent", Transient)):
                with pytest.raises(error):
                    await c.send(Call("GET", f"/v1/jobs/{case}", lambda a: job_from(a.data)))

    run_async(main())


class CuttingProxy:
    """Forwards TCP to the server; the first ``cuts`` connections are closed after
    ``budget`` bytes have gone back to the client."""

    def __init__(self, upstream_port: int, *, cuts: int, budget: int) -> None:
        self.upstream = upstream_port
        self.cuts = cuts
        self.budget = budget
        self.requests: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._open: list[socket.socket] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream))
            self._open += [down, up]
            n = len(self.requests)
            self.requests.append(b"")
            limit = self.budget if n < self.cuts else None
            for args in ((down, up, n, None, True), (up, down, n, limit, False)):
                t = threading.Thread(target=self._pipe, args=args, daemon=True)
                t.start()
                self._threads.append(t)

    def _pipe(self, src: socket.socket, dst: socket.socket, n: int, limit: int | None,
              record: bool) -> None:
        sent = 0
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                if record and len(self.requests[n]) < 4096:
                    self.requests[n] += data
                if limit is not None and sent + len(data) > limit:
                    dst.sendall(data[: limit - sent])
                    break
                dst.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()
        for s in self._open:
            s.close()
        for t in self._threads:
            t.join(5)


def test_stream_resumes_after_dropped_connections(api: Api) -> None:
    @api.treadle.task(name="talker", retries=0, pass_context=True, timeout=60)
    def talker(n: int, ctx: JobContext) -> int:
        for i in range(n):
            ctx.emit("token", {"i": i, "pad": "x" * 40})
        return n

    port = int(api.url.rsplit(":", 1)[1])
    proxy = CuttingProxy(port, cuts=2, budget=6000)
    try:
        with api_worker(api.treadle), Client(api.url, api.keys["a"]) as direct, \
                Client(f"http://127.0.0.1:{proxy.port}", api.keys["a"]) as cut:
            h = direct.submit("talker", {"n": 300})
            h.wait(30)  # stored: every item is replayed, and the cuts fall mid-replay
            events = list(cut.stream(h.id))
        tokens = [ev.item.data["i"] for ev in events
                  if ev.item is not None and ev.item.kind == "token"]
        assert tokens == list(range(300))  # each once, in order, across three connections
        assert [ev.event for ev in events].count("state") == 1  # a replayed state is dropped
        assert events[-1].event == "end" and events[-1].job is not None
        heads = [r.split(b"\r\n\r\n", 1)[0].lower() for r in proxy.requests]
        resumed = [h for h in heads if b"last-event-id: " in h
                   and b"last-event-id: 0\r" not in h + b"\r"]
        assert len(heads) == 3 and len(resumed) == 2
    finally:
        proxy.close()
