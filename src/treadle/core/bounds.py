"""What a job's names, start time and id may be: the bounds both stores hold.

A request (``NewJob``, ``core/job.py``) and a listing (``JobFilter``, ``core/reads.py``)
check the same rules, and so do many modules outside the job (keys, events, artifacts,
the API). Kept apart, below both, so each can import them without importing the other;
``treadle.core.job`` re-exports them for older imports.
"""

from __future__ import annotations

from datetime import UTC, datetime

from treadle.core.errors import InvalidInput

MAX_NAME_LENGTH = 200
# When a job may be asked to start: both stores hold any instant in this range (SQLite
# keeps epoch seconds, read back with ``fromtimestamp``, which refuses years 0 and 10000).
MIN_RUN_AT = datetime(1970, 1, 1, tzinfo=UTC)
MAX_RUN_AT = datetime(9999, 1, 1, tzinfo=UTC)
MAX_JOB_ID = (1 << 63) - 1  # a BIGINT


# Names already found valid: a producer repeats the same few task, queue and tenant names
# on every job, and checking each again cost more than the rest of building the job.
# Exact ``str`` only (a subclass could compare equal yet behave otherwise); bounded, so
# a client sending endless distinct names cannot grow it.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_MAX = 4096


def validate_name(what: str, value: str) -> str:
    """Queue, task and tenant names: non-empty, printable, bounded."""
    if type(value) is str and value in _VALID_NAMES:
        return value
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
        raise InvalidInput(f"{what} must be a non-empty string of at most {MAX_NAME_LENGTH} chars")
    if not value.isprintable() or value != value.strip():
        raise InvalidInput(f"{what} {value!r} has unprintable or surrounding whitespace characters")
    if type(value) is str and len(_VALID_NAMES) < _VALID_NAMES_MAX:
        _VALID_NAMES.add(value)
    return value


def check_run_at(run_at: object) -> datetime:
    """A start time: an aware ``datetime`` both stores can hold (1970 to 9998, UTC)."""
    if not isinstance(run_at, datetime):
        raise InvalidInput("run_at must be a datetime")
    if run_at.utcoffset() is None:
        raise InvalidInput("run_at must be timezone-aware")
    if not MIN_RUN_AT <= run_at < MAX_RUN_AT:
        raise InvalidInput("run_at must be between 1970-01-01 and 9999-01-01 (UTC)")
    return run_at

