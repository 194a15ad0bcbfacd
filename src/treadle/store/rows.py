"""Mapping database rows to core values, shared by both backends.

SQLite hands back JSON as text and time as epoch seconds; PostgreSQL hands
back decoded JSON and aware datetimes. ``Codec`` hides that difference.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from treadle.core.errors import ErrorInfo
from treadle.core.job import DEFAULT_MAX_CRASHES, Crash, Job, JobEvent, JobKind, JobLog
from treadle.core.lifecycle import JobStatus


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def epoch_to_dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def dt_to_epoch(value: datetime) -> float:
    """A time as SQLite stores it: seconds since the epoch (the inverse of epoch_to_dt)."""
    return value.timestamp()


def _identity(value: Any) -> Any:
    return value


def _sorted_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _jsonb(value: Any) -> Any:
    from psycopg.types.json import Jsonb  # only PostgreSQL stores encode with it

    return Jsonb(value)


@dataclass(frozen=True)
class Codec:
    """How one backend stores JSON and time, both ways (extension SQL uses the ``_in``
    side, so it never asks which backend it runs on)."""

    json_out: Callable[[Any], Any]  # database value -> Python
    ts_out: Callable[[Any], datetime]
    json_in: Callable[[Any], Any] = _identity  # Python -> query parameter
    ts_in: Callable[[datetime], Any] = _identity

    def opt_ts(self, value: Any) -> datetime | None:
        return None if value is None else self.ts_out(value)

    def opt_json(self, value: Any) -> Any:
        return None if value is None else self.json_out(value)


SQLITE_CODEC = Codec(json_out=json.loads, ts_out=epoch_to_dt, json_in=_sorted_json,
                     ts_in=dt_to_epoch)
POSTGRES_CODEC = Codec(json_out=_identity, ts_out=_identity, json_in=_jsonb, ts_in=_identity)


def job_from_row(row: Mapping[str, Any], codec: Codec) -> Job:
    error = codec.opt_json(row["error"])
    # keys(): `in` on an sqlite3.Row tests values; plug-in SQL may select fewer columns.
    # Read once per row (a claim decodes a whole batch of them); sqlite3.Row gives a list,
    # whose `in` scans it, a dict row (PostgreSQL) a view that is a set already.
    keys: Collection[str] = row.keys()
    if isinstance(keys, list):
        keys = frozenset(keys)
    return Job(
        id=row["id"],
        queue=row["queue"],
        kind=JobKind(row["kind"]),
        task=row["task"],
        payload=codec.json_out(row["payload"]),
        status=JobStatus(row["status"]),
        priority=row["priority"],
        run_at=codec.ts_out(row["run_at"]),
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        timeout=row["timeout"],
        tenant=row["tenant"],
        created_at=codec.ts_out(row["created_at"]),
        lease_owner=row["lease_owner"],
        lease_expires_at=codec.opt_ts(row["lease_expires_at"]),
        lease_token=row["lease_token"],
        idempotency_key=row["idempotency_key"],
        concurrency_key=row["concurrency_key"],
        result=codec.opt_json(row["result"]),
        error=ErrorInfo.from_json(error) if error else None,
        parent_id=row["parent_id"],
        callback_url=row["callback_url"],
        cancel_requested=bool(row["cancel_requested"]),
        started_at=codec.opt_ts(row["started_at"]),
        finished_at=codec.opt_ts(row["finished_at"]),
        concurrency_limit=row["concurrency_limit"] if "concurrency_limit" in keys else None,
        rate_period=row["rate_period"] if "rate_period" in keys else None,
        **_second_rule(row, keys),
        traceparent=row["traceparent"] if "traceparent" in keys else None,
        **_crash_fields(row, codec, keys),
    )


def _crash_fields(row: Mapping[str, Any], codec: Codec,
                  keys: Collection[str]) -> dict[str, Any]:
    """Crash history and threshold (ADR 0015); plug-in SQL may select fewer columns."""
    out: dict[str, Any] = {}
    if "crashes" in keys and row["crashes"] is not None:
        out["crashes"] = tuple(Crash.from_json(c) for c in codec.json_out(row["crashes"]))
    if "max_crashes" in keys:
        out["max_crashes"] = row["max_crashes"] or DEFAULT_MAX_CRASHES
    return out


def _second_rule(row: Mapping[str, Any], keys: Collection[str]) -> dict[str, Any]:
    """A rate limit beside the concurrency limit (ADR 0010, migration 0010)."""
    if "rate_key" not in keys or row["rate_key"] is None:
        return {}
    return {"rate_key": row["rate_key"], "rate_limit": row["rate_limit"],
            "rate_window": row["rate_window"]}


def event_from_row(row: Mapping[str, Any], codec: Codec) -> JobEvent:
    return JobEvent(
        id=row["id"],
        job_id=row["job_id"],
        from_status=JobStatus(row["from_status"]) if row["from_status"] else None,
        to_status=JobStatus(row["to_status"]),
        attempt=row["attempt"],
        worker=row["worker"],
        reason=row["reason"],
        at=codec.ts_out(row["at"]),
        detail=codec.opt_json(row["detail"]),
    )


def log_from_row(row: Mapping[str, Any], codec: Codec) -> JobLog:
    return JobLog(
        job_id=row["job_id"],
        attempt=row["attempt"],
        at=codec.ts_out(row["at"]),
        message=row["message"],
    )


def sort_claimed(jobs: list[Job]) -> list[Job]:
    """RETURNING gives no order; hand jobs out in claim order."""
    jobs.sort(key=lambda j: (-j.priority, j.run_at, j.id))
    return jobs
