"""The two rows SQLite's guarded writes add beside a job's change: its event, and a
finished job's callback job. Both the writes under a lease (``leases.py``) and the
operator's writes (``control.py``) make them, so they live here once, inherited by both.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from treadle.store.queries import load_queries
from treadle.store.rows import dt_to_epoch as _ts

Q = load_queries("treadle.store.sqlite")


class EventWrites:
    def _callback(self, conn: sqlite3.Connection, job_id: int, now: datetime) -> None:
        row = conn.execute(Q["insert_callback_job"], {"id": job_id, "now": _ts(now)}).fetchone()
        if row is not None:
            self._event(conn, row["id"], None, "queued", 0, None, "enqueued", now)

    @staticmethod
    def _event(
        conn: sqlite3.Connection,
        job_id: int,
        from_status: str | None,
        to_status: str,
        attempt: int,
        worker: str | None,
        reason: str,
        at: datetime,
        detail: str | None = None,
    ) -> None:
        conn.execute(
            Q["insert_event"],
            {
                "job_id": job_id, "from_status": from_status, "to_status": to_status,
                "attempt": attempt, "worker": worker, "reason": reason, "at": _ts(at),
                "detail": detail,
            },
        )
