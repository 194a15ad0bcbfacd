"""Every event a test's database holds must follow the lifecycle table.

The table in ``core/lifecycle.py`` is the one description of the lifecycle, but the
stores enforce it in SQL; this check closes the loop by reading back what the stores
actually wrote: each event is a legal (from, to, reason) move, and each job's events
chain (an event starts where the previous one ended).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from treadle.core.lifecycle import CREATED_REASON, JobStatus, is_legal

_SQL = "SELECT id, job_id, from_status, to_status, reason FROM treadle_events ORDER BY id"
REFUSED_REASON = "lease_lost"  # a refused write: recorded, changes nothing


def events_of(url: str) -> list[Mapping[str, Any]]:
    """All events in the database at ``url`` (none if it has no Treadle schema yet)."""
    if url.startswith("sqlite:"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            return []
        conn = sqlite3.connect(path)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(_SQL).fetchall()]
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            conn.close()
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as pg:
        if pg.execute("SELECT to_regclass('treadle_events') AS t").fetchone() == {"t": None}:
            return []
        return list(pg.execute(_SQL).fetchall())


def illegal_events(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """Describe every event that breaks the lifecycle table or its job's chain."""
    problems: list[str] = []
    status: dict[int, str] = {}  # job id -> where its last transition left it
    for ev in events:
        job, frm, to, reason = ev["job_id"], ev["from_status"], ev["to_status"], ev["reason"]
        where = f"event {ev['id']} of job {job}: {frm} -> {to} ({reason})"
        if frm is None:
            if (to, reason) != (JobStatus.QUEUED.value, CREATED_REASON) or job in status:
                problems.append(f"{where}: only a job's first event, 'enqueued', has no from")
        elif reason == REFUSED_REASON:
            if frm != to:
                problems.append(f"{where}: a refused write must not change the status")
        elif not is_legal(JobStatus(frm), JobStatus(to), reason):
            problems.append(f"{where}: not in core/lifecycle.py TRANSITIONS")
        if frm is not None and job in status and frm != status[job]:
            problems.append(f"{where}: the previous event left the job {status[job]}")
        status[job] = to
    return problems


def assert_events_legal(url: str) -> None:
    problems = illegal_events(events_of(url))
    assert not problems, "events outside the lifecycle table:\n" + "\n".join(problems)
