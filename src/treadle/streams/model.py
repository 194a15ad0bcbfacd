"""What a job's stream holds: numbered items, and the limits that keep it bounded.

Every item has a per-job sequence number (``seq``, the SSE event id), the attempt that
produced it, a ``kind`` and JSON ``data``. Kinds ``log``, ``progress``, ``step`` and
``trimmed`` are the platform's; ``ctx.emit`` takes any other short name. Data is checked by the
project's sanitiser (ADR 0006) when it is emitted, in the task's own thread, so a value
that cannot be stored is refused there with a classified error instead of reaching the
flusher (where it could only hold up other jobs' writes).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from treadle.core import storable
from treadle.core.errors import InvalidInput, InvalidOutput, ResourceExhausted

LOG = "log"
PROGRESS = "progress"
TRIMMED = "trimmed"
STEP = "step"  # a workflow step started/completed/failed
RESERVED = frozenset({LOG, PROGRESS, TRIMMED, STEP, "state", "end"})
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")


@dataclass(frozen=True)
class StreamLimits:
    """Caps per job. ``max_items`` are kept (older ones are trimmed, and a ``trimmed``
    marker says so); one item's JSON may be at most ``max_item_bytes``; a worker holds at
    most ``max_pending`` unwritten items per attempt (more are counted, not kept)."""

    max_items: int = 10_000
    max_item_bytes: int = 64 * 1024
    max_pending: int = 10_000
    max_log_chars: int = 8_192  # JSON-escaped, still under max_item_bytes


DEFAULT_LIMITS = StreamLimits()


@dataclass(frozen=True)
class StreamItem:
    seq: int
    attempt: int
    kind: str
    data: Any
    at: float  # seconds since the Unix epoch

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "attempt": self.attempt, "kind": self.kind,
                "data": self.data, "at": self.at}


@dataclass(frozen=True)
class Pending:
    """An item waiting in the worker for the flusher (no sequence number yet)."""

    attempt: int
    kind: str
    data_json: str
    at: float


def check_kind(kind: Any) -> str:
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise InvalidInput("an emitted item's kind must be a name of 1-64 letters, digits "
                           "or _.:- starting with a letter")
    if kind in RESERVED:
        raise InvalidInput(f"kind {kind!r} is reserved; use ctx.log or ctx.progress")
    return kind


def encode(data: Any, limits: StreamLimits = DEFAULT_LIMITS, what: str = "emitted data") -> str:
    """JSON text of ``data``, or a classified refusal (never a stuck worker)."""
    storable.check(data, what, error=InvalidOutput)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    size = len(text.encode())
    if size > limits.max_item_bytes:
        raise ResourceExhausted(f"{what} is {size} bytes; a stream item may be at most "
                                f"{limits.max_item_bytes}",
                                detail={"bytes": size, "limit": limits.max_item_bytes})
    return text


def progress_data(done: Any, total: Any, message: Any) -> dict[str, Any]:
    for name, value in (("done", done), ("total", total)):
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, int | float)
                                  or value != value or value in (float("inf"), float("-inf"))):
            raise InvalidInput(f"progress {name} must be a finite number")
    data: dict[str, Any] = {"done": done, "total": total}
    if message is not None:
        data["message"] = storable.clean_text(str(message), 1000)
    return data
