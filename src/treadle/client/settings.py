"""What both clients share: validated settings and how an answer becomes a value."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from treadle.client.calls import Answer, Call
from treadle.client.wire import error_from, parse_body
from treadle.core.errors import BadResponse, ConfigurationError, Transient

T = TypeVar("T")
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
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
                or parts.fragment or parts.username or parts.password:
            raise ConfigurationError(
                f"the Treadle URL must be http(s)://host[:port][/prefix], got {self.base_url!r}")
        if self.api_key is not None and (not self.api_key or not self.api_key.isascii()
                                         or not self.api_key.isprintable()
                                         or len(self.api_key) > 1000):
            raise ConfigurationError("the API key must be printable ASCII (at most 1000 chars)")
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
