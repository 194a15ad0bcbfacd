"""The operator's writes on an SQLite store: cancel a job (and its unfinished children),
retry a finished one, take one out of quarantine, set a queue's pause and limit.

Each is one write transaction: a job's update guarded by the status it expects, with its
event and the callback of a job it finishes; or a queue's settings. Waiters in this
process are woken after it commits. A mixin of ``SQLiteStore``, kept apart because these
come from whoever operates the jobs (``jobs.py``, the HTTP API, the CLI, the UI), not
from a worker's own path; the writes under a lease are ``leases.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from treadle.core.clock import Clock
from treadle.core.errors import ErrorInfo
from treadle.core.job import Job, QueueInfo
from treadle.store.queries import load_queries
from treadle.store.rows import dt_to_epoch as _ts
from treadle.store.rows import dumps
from treadle.store.sqlite.events import EventWrites

Q = load_queries("treadle.store.sqlite")


class ControlOps(EventWrites):
    clock: Clock
    _tx: Callable[..., AbstractContextManager[sqlite3.Connection]]
    _notify: Callable[[], None]  # WaitOps'

    if TYPE_CHECKING:
        # SqlReads'
        def get_job(self, job_id: int, *, tenant: str | None = None) -> Job: ...
        def queue(self, name: str) -> QueueInfo: ...

    def cancel(self, job_id: int, *, tenant: str | None = None) -> Job:
        job = self.get_job(job_id, tenant=tenant)
        now = self.clock.now()
        with self._tx() as conn:
            self._cancel_tree(conn, job_id, now)
        self._notify()
        return self.get_job(job.id)

    def _cancel_tree(self, conn: sqlite3.Connection, job_id: int, now: datetime) -> None:
        """Cancel a job and, first, its unfinished children (a workflow's fan-out), so
        nothing keeps running for a parent that is gone. Children go first: a cancelled
        job's callback delivery is its child too, and must not be cancelled with it."""
        cur = conn.execute(Q["job_status_token"], {"id": job_id}).fetchone()
        if cur is None or cur["status"] in ("succeeded", "failed", "cancelled"):
            return
        for child in conn.execute(Q["unfinished_children"], {"id": job_id}).fetchall():
            self._cancel_tree(conn, child["id"], now)
        row = conn.execute(Q["cancel_queued"], {"id": job_id, "now": _ts(now)}).fetchone()
        if row is not None:
            self._event(conn, job_id, cur["status"], "cancelled", row["attempt"], None,
                        "cancelled", now)
            self._callback(conn, job_id, now)
        else:
            conn.execute(Q["request_cancel"], {"id": job_id})

    def retry(self, job_id: int, *, tenant: str | None = None) -> Job:
        job = self.get_job(job_id, tenant=tenant)
        now = self.clock.now()
        with self._tx() as conn:
            row = conn.execute(Q["manual_retry"], {"id": job_id, "now": _ts(now)}).fetchone()
            if row is not None:
                self._event(conn, job_id, job.status.value, "queued", row["attempt"], None,
                            "manual_retry", now)
        self._notify()
        return self.get_job(job.id)

    def _leave_quarantine(
        self, job_id: int, *, to: str, reason: str, now: datetime,
        error: ErrorInfo | None, detail: dict[str, Any],
    ) -> bool:
        terminal = to != "queued"
        with self._tx() as conn:
            row = conn.execute(Q["leave_quarantine"], {
                "id": job_id, "status": to, "now": _ts(now),
                "error": dumps(error.to_json()) if error else None,
                "finished_at": _ts(now) if terminal else None,
            }).fetchone()
            if row is None:
                return False
            self._event(conn, job_id, "quarantined", to, row["attempt"], None, reason, now,
                        dumps(detail))
            if terminal:
                self._callback(conn, job_id, now)
        self._notify()
        return True

    def set_queue(
        self,
        name: str,
        *,
        paused: bool | None = None,
        concurrency_limit: int | None = None,
        clear_limit: bool = False,
    ) -> QueueInfo:
        with self._tx() as conn:
            conn.execute(
                Q["upsert_queue"],
                {"name": name, "paused": None if paused is None else int(paused),
                 "concurrency_limit": concurrency_limit, "clear_limit": int(clear_limit)},
            )
        self._notify()
        return self.queue(name)


__all__ = ["ControlOps"]
