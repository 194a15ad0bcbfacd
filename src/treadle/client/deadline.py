"""An overall deadline on every socket read of a call, status line and headers included.

httpx's timeouts are per operation: a read timeout bounds one ``recv``, not the answer.
The body is counted against the call's deadline as it arrives (``settings.Cap``), but a
server that trickles its status line or headers a byte at a time (each read quick, the
whole endless) would hold a synchronous call until h11's header cap, many minutes later.
The synchronous client's connections therefore read through :class:`DeadlineBackend`,
which gives each read at most the time left before the deadline of the call in progress
(a context variable, so per thread); the asynchronous client cancels instead
(``anyio.fail_after``).
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

# time.monotonic() by which the current call's reads must be done; None: no deadline.
_DEADLINE: ContextVar[float | None] = ContextVar("treadle_client_deadline", default=None)
# Past the call's own deadline (which the body's Cap enforces with its clearer message),
# the slack before a stalled read is cut.
GRACE = 1.0


@contextlib.contextmanager
def reads_within(seconds: float) -> Iterator[None]:
    token = _DEADLINE.set(time.monotonic() + seconds + GRACE)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _bounded(timeout: float | None) -> float | None:
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the call's deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(max_bytes, _bounded(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, _bounded(timeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(self.inner.start_tls(ssl_context, server_hostname, _bounded(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """Wraps a network backend: its streams' reads and writes honour ``reads_within``."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self.inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _Stream(self.inner.connect_tcp(host, port, timeout, local_address,
                                              socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        return _Stream(self.inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def deadline_transport() -> httpx.HTTPTransport:
    """httpx's own transport whose direct connections read through :class:`DeadlineBackend`.
    httpx has no public way to pass a network backend, hence the attribute; a version
    without it fails here, at construction, not silently later."""
    transport = httpx.HTTPTransport()
    pool = transport._pool
    if not isinstance(pool, httpcore.ConnectionPool) or not isinstance(
            getattr(pool, "_network_backend", None), httpcore.NetworkBackend):
        raise RuntimeError("this httpx/httpcore version has no pluggable network backend")
    pool._network_backend = DeadlineBackend(pool._network_backend)
    return transport
