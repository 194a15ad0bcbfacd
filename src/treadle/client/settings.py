"""What both clients share: validated settings, how a call becomes a request, how an
answer becomes a value or an exception, and a job stream's state between connections.
``sync.py`` and ``aio.py`` keep only the I/O (send, read, sleep), plain or awaited."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import httpx

from treadle.client import calls
from treadle.client.calls import Answer, Call
from treadle.client.sse import Follow, SSEParser
from treadle.client.wire import dumps, error_from, parse_body
from treadle.core.errors import BadResponse, ConfigurationError, InvalidInput, Transient
from treadle.core.job import Job
from treadle.jobs import WaitTimeout
from treadle.streams.follow import StreamEvent

T = TypeVar("T")
C = TypeVar("C")  # the client a handle belongs to
# The server sends a keep-alive comment every 15 s; silence for this long is a dead link.
STREAM_IDLE = 45.0
RECONNECTS = 5  # consecutive failed reconnects before a stream gives up


@dataclass(frozen=True)
class Settings:
    base_url: str
    api_key: str | None
    timeout: float
    max_response_bytes: int

    def __post_init__(self) -> None:
        bad_url = ConfigurationError(
            f"the Treadle URL must be http(s)://host[:port][/prefix], got {self.base_url!r}")
        try:
            parts = urlsplit(self.base_url)
            # What httpx would refuse at the first call (a bracketed host that is no IPv6
            # address, a lone surrogate in the host or path) is refused here, as config.
            httpx.URL(self.base_url)
        except (ValueError, UnicodeError, httpx.InvalidURL):
            raise bad_url from None
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
                or parts.fragment or parts.username or parts.password:
            raise bad_url
        # Surrounding whitespace: the transport refuses the header, which would read as
        # the server being unreachable.
        if self.api_key is not None and (not self.api_key or not self.api_key.isascii()
                                         or not self.api_key.isprintable()
                                         or self.api_key != self.api_key.strip()
                                         or len(self.api_key) > 1000):
            raise ConfigurationError("the API key must be printable ASCII without surrounding "
                                     "spaces (at most 1000 chars)")
        if not (isinstance(self.timeout, int | float) and math.isfinite(self.timeout)
                and 0 < self.timeout <= 3600):
            raise ConfigurationError("timeout must be in (0, 3600] seconds")
        if not 1024 <= self.max_response_bytes <= 1 << 34:
            raise ConfigurationError("max_response_bytes must be from 1 KiB to 16 GiB")

    @property
    def root(self) -> str:
        return self.base_url.rstrip("/")

    def headers(self, call: Call[T]) -> dict[str, str]:
        out = {"Accept": "application/json", **call.headers}
        if self.api_key is not None:
            out["Authorization"] = f"Bearer {self.api_key}"
        if call.has_body:
            out["Content-Type"] = "application/json"
        return out

    def stream_headers(self, cursor: int) -> dict[str, str]:
        out = {"Accept": "text/event-stream", "Last-Event-ID": str(cursor)}
        if self.api_key is not None:
            out["Authorization"] = f"Bearer {self.api_key}"
        return out


class Cap:
    """Counts body bytes against the size cap and the call's overall deadline."""

    def __init__(self, settings: Settings, seconds: float) -> None:
        self.limit = settings.max_response_bytes
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.buf = bytearray()

    def add(self, chunk: bytes) -> None:
        self.buf += chunk
        if len(self.buf) > self.limit:
            raise BadResponse(f"the server's answer is over {self.limit} bytes; refused",
                              detail={"limit": self.limit})
        if time.monotonic() > self.deadline:
            raise Transient(f"the server's answer took longer than {self.seconds:.0f}s")


def finish(call: Call[T], status: int, headers: Mapping[str, str], raw: bytes) -> T:
    """The parsed value of a success, or the library exception of a failure."""
    ctype = headers.get("content-type", "")
    if status not in call.ok:
        raise error_from(status, ctype, raw, headers)
    data = parse_body(raw, f"{call.method} {call.path}") if raw else None
    return call.parse(Answer(status, data, headers))


def unreachable(settings: Settings, exc: Exception) -> Transient:
    reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
    return Transient(f"cannot reach Treadle at {settings.root} ({reason})"[:500])


def backoff(failures: int) -> float:
    """Seconds before reconnect number ``failures`` (0.2, 0.4, ... up to 2)."""
    return float(min(0.1 * 2**failures, 2.0))


@dataclass(frozen=True)
class Request:
    """One call as httpx sends it, with the cap its answer is read against."""

    settings: Settings
    method: str
    path: str
    content: bytes | None
    params: Any
    headers: dict[str, str]
    timeout: httpx.Timeout
    cap: Cap

    def failed(self, exc: httpx.TransportError) -> Transient:
        """The library's exception for a request that got no (complete) answer."""
        if isinstance(exc, httpx.TimeoutException):
            return Transient(f"no answer from {self.settings.root} within "
                             f"{self.cap.seconds:.0f}s")
        return unreachable(self.settings, exc)


def request(settings: Settings, call: Call[T]) -> Request:
    seconds = settings.timeout + call.extra_time
    return Request(settings, call.method, call.path,
                   dumps(call.body) if call.has_body else None, call.params,
                   settings.headers(call), httpx.Timeout(seconds, connect=settings.timeout),
                   Cap(settings, seconds))


class StreamState:
    """A job stream between connections: its cursor, deadline and reconnect count.

    The twins subclass it and add only the connection and the sleep."""

    def __init__(self, settings: Settings, job_id: int, after: int = 0,
                 deadline: float | None = None) -> None:
        self.settings = settings
        self.follow = Follow(calls.job_id(job_id), cursor=after)
        if deadline is not None and math.isnan(deadline):  # compares false with everything
            raise InvalidInput("a wait's timeout must be a number of seconds, not NaN")
        self.deadline = deadline  # time.monotonic(); passing it raises WaitTimeout
        self.failures = 0

    def _request(self) -> tuple[str, dict[str, str], httpx.Timeout]:
        """Path, headers and timeout of the next connection (it resumes at the cursor)."""
        s = self.settings
        idle = min(STREAM_IDLE, max(0.001, self._remaining()))
        return (f"/v1/jobs/{self.follow.job_id}/stream", s.stream_headers(self.follow.cursor),
                httpx.Timeout(idle, connect=min(s.timeout, idle)))

    def _refusal_cap(self) -> Cap:
        return Cap(self.settings, self.settings.timeout)

    def _parser(self) -> SSEParser:
        return SSEParser(max_line=self.settings.max_response_bytes)

    def _feed(self, parser: SSEParser, chunk: bytes) -> Iterator[StreamEvent]:
        """The events in ``chunk``, stopping at the stream's end."""
        for msg in parser.feed(chunk):
            ev = self.follow.on(msg)
            if ev is not None:
                yield ev
            if self.follow.ended:
                return

    def _pause(self, progressed: bool, failure: Exception) -> float | None:
        """Seconds to wait before reconnecting after ``failure`` (None: at once, the last
        connection got somewhere); ``Transient`` after RECONNECTS that got nowhere."""
        self.failures = 0 if progressed else self.failures + 1
        if self.failures > RECONNECTS:
            raise unreachable(self.settings, failure)
        if not self.failures:  # back off only while reconnecting gets nowhere
            return None
        return min(backoff(self.failures), max(0.0, self._remaining()))

    def _remaining(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def _expired(self) -> bool:
        return self._remaining() <= 0

    @staticmethod
    def _timeout_of(job: Job) -> WaitTimeout:
        return WaitTimeout(f"job {job.id} not finished in time (status {job.status.value})",
                           detail={"id": job.id, "status": job.status.value})


class HandleState(Generic[C]):
    """A remote job handle's record of its job (``JobHandle``'s shape); the twins add the
    calls, plain or awaited."""

    def __init__(self, client: C, job: Job, created: bool = True) -> None:
        self.client = client
        self.id = job.id
        self.job = job
        self.created = created

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self.id} task={self.job.task!r}>"
