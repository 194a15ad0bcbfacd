"""How a model server's failures are classified (one table for every HTTP adapter).

429 → ``rate_limited`` honouring ``retry-after`` (seconds or an HTTP date; also the
``retry-after-ms`` header some servers send); 5xx, timeouts and connection errors →
``transient``; a prompt over the model's context window → ``invalid_input`` (retrying
the same conversation cannot help); any other 4xx → ``permanent``.

The SDKs' own retries are turned off (``max_retries=0``): a retry is a job retry, which
replays the checkpoints and holds no worker slot while it waits.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping
from typing import Any

from treadle.core.errors import InvalidInput, Permanent, RateLimited, Transient, TreadleError

MAX_RETRY_AFTER = 3600.0
_CONTEXT = re.compile(
    r"context[_ ]length|context window|maximum context|prompt is too long|too many tokens"
    r"|reduce the length|input is too long", re.IGNORECASE)


def retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` / ``retry-after`` (bounded, never < 0)."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        if "retry-after-ms" in lower:
            return _bound(float(lower["retry-after-ms"]) / 1000)
        raw = lower.get("retry-after")
        if raw is None:
            return None
        try:
            return _bound(float(raw))
        except ValueError:
            when = email.utils.parsedate_to_datetime(raw)
            return _bound(when.timestamp() - (time.time() if now is None else now))
    except (ValueError, TypeError, OverflowError):
        return None


def _bound(value: float) -> float | None:
    if value != value:  # NaN
        return None
    return min(max(0.0, value), MAX_RETRY_AFTER)


# What reading an answer that is not the API's (not JSON, nested past the parser, fields
# of the wrong type) raises from the SDK's or our parsing.
UNREADABLE = (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError)


def unreadable(exc: BaseException, *, server: str) -> TreadleError:
    """The far side answered something that is not an answer (a proxy's error page, a
    broken server): transient, with a message that says so rather than the parser's."""
    return Transient(f"{server} answered something that could not be read as an answer "
                     f"({type(exc).__name__})", detail={"server": server})


def from_status(status: int, message: str, headers: Mapping[str, str] | None = None,
                body: Any = None, *, server: str) -> TreadleError:
    detail = {"server": server, "status": status}
    text = f"{server} answered {status}: {message}"[:2000]
    if status == 429:
        return RateLimited(text, retry_after=retry_after(headers), detail=detail)
    if status >= 500 or status in (408, 409):
        return Transient(text, detail=detail)
    code = ""
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping):
            code = str(err.get("code") or err.get("type") or "")
    if status in (400, 413, 422) and (_CONTEXT.search(message) or "context" in code):
        return InvalidInput(f"the conversation is too long for the model: {text}",
                            detail={**detail, "reason": "context_too_long"})
    return Permanent(text, detail=detail)


def connection_error(exc: BaseException, *, server: str) -> TreadleError:
    return Transient(f"{server}: {type(exc).__name__}: {exc}"[:2000],
                     detail={"server": server, "reason": "connection"})
