"""Per-key flow-control keys (ADR 0010): ``"user:{user}"`` or a callable over the
payload, checked at registration and computed at submit with errors that name the task."""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import Any

from treadle.core.errors import ConfigurationError, InvalidInput
from treadle.core.job import MAX_NAME_LENGTH


def check_key_limit(spec: Any, what: str) -> None:
    """``(key, limit)``: a key spec and a positive integer."""
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ConfigurationError(f"{what} must be a (key, limit) pair")
    key, limit = spec
    if not (isinstance(key, str) and key) and not callable(key):
        raise ConfigurationError(f"{what} key must be a format string or a callable")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1_000_000:
        raise ConfigurationError(f"{what} limit must be an integer from 1 to 1000000")


def check_rate_limit(spec: Any) -> None:
    """``(key, starts, per_seconds)``."""
    if not isinstance(spec, tuple) or len(spec) != 3:
        raise ConfigurationError("rate_limit must be a (key, starts, per_seconds) triple")
    check_key_limit(spec[:2], "rate_limit")
    per = spec[2]
    if isinstance(per, bool) or not isinstance(per, int | float) or not 0.001 <= per <= 86400:
        raise ConfigurationError("rate_limit period must be between 1 ms and a day (seconds)")


def check_key_format(task: str, fmt: str) -> None:
    """A format string may only name payload fields (``{user}``), nothing fancier."""
    if not isinstance(fmt, str) or not fmt.isprintable() or len(fmt) > MAX_NAME_LENGTH:
        # Its text is part of every key: a key that cannot be stored would refuse
        # every submit of the task.
        raise ConfigurationError(
            f"task {task!r}: a key format must be printable text of at most "
            f"{MAX_NAME_LENGTH} characters")
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError as exc:
        raise ConfigurationError(f"task {task!r}: bad key format {fmt!r}: {exc}") from None
    for _, name, spec, conv in fields:
        if name is None:
            continue
        if not name.isidentifier() or spec or conv:
            raise ConfigurationError(
                f"task {task!r}: key format {fmt!r} may only use plain {{field}} names"
            )


def job_key(task: str, spec: str | Callable[[dict[str, Any]], str],
            payload: Mapping[str, Any]) -> str:
    """The key for one payload; a missing field or a raising function is the caller's
    error, reported before anything is stored."""
    try:
        key = spec(dict(payload)) if callable(spec) else spec.format_map(payload)
    except Exception as exc:
        raise InvalidInput(
            f"task {task!r}: cannot compute the flow-control key: {type(exc).__name__}: {exc}",
            detail={"task": task},
        ) from None
    if not isinstance(key, str) or not key or len(key) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"task {task!r}: flow-control key must be a non-empty string of at most "
            f"{MAX_NAME_LENGTH} characters",
            detail={"task": task},
        )
    return key
