"""Reading ``GET /v1/jobs/{id}/stream`` (Server-Sent Events) without I/O of its own.

:class:`SSEParser` turns bytes into messages (``id``, ``event``, ``data``) with every
line bounded; :class:`Follow` turns messages into the library's
:class:`~treadle.streams.follow.StreamEvent` values and remembers the position to resume
from (``Last-Event-ID``) after a reconnect, dropping what a replay repeats (items at or
below the cursor, a ``state`` that did not change). The sync and async clients drive both
with their own transport.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from treadle.client.wire import job_from, parse_body
from treadle.core.errors import BadResponse
from treadle.streams.follow import StreamEvent
from treadle.streams.model import StreamItem

MAX_EVENT_ID = 1 << 62


@dataclass(frozen=True)
class Message:
    event: str
    data: str
    id: str | None


@dataclass
class SSEParser:
    """Incremental parser (the WHATWG event-stream format, the parts the API uses)."""

    max_line: int
    _buf: bytearray = field(default_factory=bytearray)
    _event: str = ""
    _data: list[str] = field(default_factory=list)
    _id: str | None = None
    retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[Message]:
        self._buf += chunk
        out: list[Message] = []
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                if len(self._buf) > self.max_line:
                    raise BadResponse(f"a stream line is longer than {self.max_line} bytes")
                return out
            raw = bytes(self._buf[:end]).rstrip(b"\r")
            del self._buf[: end + 1]
            if len(raw) > self.max_line:
                raise BadResponse(f"a stream line is longer than {self.max_line} bytes")
            message = self._line(raw.decode("utf-8", "replace"))
            if message is not None:
                out.append(message)

    def _line(self, line: str) -> Message | None:
        if not line:  # a blank line dispatches the event
            if not self._data:
                self._event = ""
                return None
            msg = Message(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            return msg
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = min(int(value), 60_000)
        return None


@dataclass
class Follow:
    """What has been seen of one job's stream; turns messages into stream events."""

    job_id: int
    cursor: int = 0  # the last item seq delivered: sent as Last-Event-ID on reconnect
    status: str = ""
    attempt: int = -1
    ended: bool = False

    def on(self, msg: Message) -> StreamEvent | None:
        data = parse_body(msg.data.encode(), f"stream event {msg.event!r}")
        if msg.event == "state":
            status, attempt = _state(data)
            if (status, attempt) == (self.status, self.attempt):
                return None  # a reconnect's first event repeats what we know
            self.status, self.attempt = status, attempt
            return StreamEvent("state", self.cursor, status, attempt)
        if msg.event == "item":
            item = _item(data)
            if item.seq <= self.cursor:
                return None  # replayed after a reconnect
            self.cursor = item.seq
            return StreamEvent("item", item.seq, self.status, self.attempt, item=item)
        if msg.event == "end":
            job = job_from(data)
            self.ended = True
            return StreamEvent("end", self.cursor, job.status.value, job.attempt, job=job)
        return None  # an event type from a newer server: skipped, as browsers do


def _state(data: Any) -> tuple[str, int]:
    if (not isinstance(data, dict) or not isinstance(data.get("status"), str)
            or not _int(data.get("attempt"))):
        raise BadResponse("a stream 'state' event is not {job_id, status, attempt}")
    return data["status"], data["attempt"]


def _item(data: Any) -> StreamItem:
    if (not isinstance(data, dict) or not _int(data.get("seq")) or not _int(data.get("attempt"))
            or not isinstance(data.get("kind"), str)
            or not isinstance(data.get("at"), int | float) or isinstance(data.get("at"), bool)
            or not 0 < data["seq"] <= MAX_EVENT_ID):
        raise BadResponse("a stream 'item' event is not {seq, attempt, kind, data, at}")
    return StreamItem(data["seq"], data["attempt"], data["kind"], data.get("data"),
                      float(data["at"]))


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
