"""The remote client (ADR 0020) against a server an attacker controls, on real TCP sockets:
a server that never answers, or trickles its status line and headers forever, cannot hold
a call past the client's own deadline; a redirect never carries the API key to another
host (or anywhere: the client does not follow redirects)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.aio import run_async
from treadle.client import AsyncClient, Client
from treadle.core.errors import TreadleError

KEY = "tk-secret-canary-0123456789"
TIMEOUT = 1.0
BOUND = 8.0  # seconds: the deadline plus generous slack for a loaded machine


class RawServer:
    """A TCP listener on loopback whose every connection is handled by ``behave``."""

    def __init__(self, behave: Callable[[socket.socket, threading.Event], None],
                 host: str = "127.0.0.1") -> None:
        self.behave = behave
        self.stop = threading.Event()
        self.sock = socket.create_server((host, 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.conns: list[socket.socket] = []
        self.received = bytearray()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        try:
            self.received += self._request(conn)
            self.behave(conn, self.stop)
        except OSError:
            pass

    def _request(self, conn: socket.socket) -> bytes:
        data = b""
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in data and time.monotonic() < deadline:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            data += chunk
        return data

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        for conn in self.conns:
            conn.close()
        self.thread.join(5)


def silent(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait()  # the request was read; no byte ever comes back


def trickle_headers(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not stop.wait(0.1):  # every read is quick; the headers never end
        conn.sendall(b"a")


def trickle_status(conn: socket.socket, stop: threading.Event) -> None:
    for byte in b"HTTP/1.1 200":
        if stop.wait(0.1):
            return
        conn.sendall(bytes([byte]))
    while not stop.wait(0.1):
        conn.sendall(b" ")


def trickle_body(conn: socket.socket, stop: threading.Event) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000000\r\n\r\n")
    while not stop.wait(0.1):
        conn.sendall(b" ")


@pytest.fixture
def servers() -> Iterator[list[RawServer]]:
    started: list[RawServer] = []
    yield started
    for s in started:
        s.close()


def bounded(call: Callable[[], Any]) -> tuple[BaseException | None, float]:
    """Run ``call`` in a thread; what it raised and how long it took (or inf: it hung).
    A hung call is released when the fixture closes the server's sockets."""
    out: list[BaseException | None] = []
    started = time.monotonic()

    def run() -> None:
        try:
            call()
            out.append(None)
        except BaseException as exc:  # reported to the test's thread
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND)
    return (out[0] if out else None), (time.monotonic() - started if out else float("inf"))


@pytest.mark.parametrize("behave", [silent, trickle_status, trickle_headers, trickle_body],
                         ids=lambda f: f.__name__)
def test_a_hostile_server_cannot_hold_a_call_past_the_deadline(
    servers: list[RawServer], behave: Callable[[socket.socket, threading.Event], None]
) -> None:
    server = RawServer(behave)
    servers.append(server)

    def sync_call() -> None:
        with Client(server.url, KEY, timeout=TIMEOUT) as c:
            c.get_job(1)

    async def async_call() -> None:
        async with AsyncClient(server.url, KEY, timeout=TIMEOUT) as c:
            await c.get_job(1)

    for call in (sync_call, lambda: run_async(async_call())):
        error, took = bounded(call)
        assert took < BOUND, f"{behave.__name__}: the client hung past its deadline"
        assert isinstance(error, TreadleError), repr(error)


def redirector(target: str) -> Callable[[socket.socket, threading.Event], None]:
    def behave(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: " + target.encode()
                     + b"/v1/jobs/1\r\nContent-Length: 0\r\n\r\n")
        stop.wait()
    return behave


def answer_job(conn: socket.socket, stop: threading.Event) -> None:
    body = b'{"id": 1}'
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)


@pytest.mark.parametrize("target_host", ["127.0.0.2", "127.0.0.1"])
def test_a_redirect_never_carries_the_key(servers: list[RawServer], target_host: str) -> None:
    """Another loopback address (another host) and another port of the same host."""
    catcher = RawServer(answer_job, host=target_host)
    origin = RawServer(redirector(catcher.url))
    servers += [catcher, origin]

    def sync_call() -> None:
        with Client(origin.url, KEY, timeout=TIMEOUT) as c:
            c.get_job(1)

    async def async_call() -> None:
        async with AsyncClient(origin.url, KEY, timeout=TIMEOUT) as c:
            await c.get_job(1)

    for call in (sync_call, lambda: run_async(async_call())):
        error, took = bounded(call)
        assert took < BOUND
        assert isinstance(error, TreadleError), repr(error)  # a redirect is not an answer
    assert KEY.encode() in origin.received  # the control: the key went where it was sent
    assert catcher.received == b""  # and nowhere else
