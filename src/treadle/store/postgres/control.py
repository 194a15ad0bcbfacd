"""The operator's writes on a PostgreSQL store: cancel a job (and its unfinished
children), retry a finished one, take one out of quarantine, set a queue's pause and
limit.

Each is one transaction: a job's update guarded by the status it expects, with its event,
the callback of a job it finishes and the notification that wakes whoever waits; or a
queue's settings and their notification. A mixin of ``PostgresStore``, kept apart because
these come from whoever operates the jobs (``jobs.py``, the HTTP API, the CLI, the UI),
not from a worker's own path; the writes under a lease are ``leases.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.types.json import Jsonb

from treadle.core.clock import Clock
from treadle.core.errors import ErrorInfo
from treadle.core.job import Job, QueueInfo
from treadle.store.queries import load_queries

Q = load_queries("treadle.store.postgres")
Cursor = psycopg.Cursor[dict[str, Any]]


class ControlOps:
    clock: Clock
    _limited_expires: float  # ClaimOps' cache of limited queues
    _cursor: Callable[..., AbstractContextManager[Cursor]]

    if TYPE_CHECKING:  # SqlReads'
        def get_job(self, job_id: int, *, tenant: str | None = None) -> Job: ...
        def queue(self, name: str) -> QueueInfo: ...

    def cancel(self, job_id: int, *, tenant: str | None = None) -> Job:
        self.get_job(job_id, tenant=tenant)
        now = self.clock.now()
        with self._cursor(tx=True) as cur:
            self._cancel_tree(cur, job_id, now)
        return self.get_job(job_id)

    def _cancel_tree(self, cur: psycopg.Cursor[dict[str, Any]], job_id: int, now: datetime) -> None:
        """Cancel a job and, first, its unfinished children (a workflow's fan-out), so
        nothing keeps running for a parent that is gone. Children go first: a cancelled
        job's callback delivery is its child too, and must not be cancelled with it."""
        cur.execute(Q["lock_job"], {"id": job_id})
        job = cur.fetchone()
        if job is None or job["status"] in ("succeeded", "failed", "cancelled"):
            return
        cur.execute(Q["unfinished_children"], {"id": job_id})
        for child in cur.fetchall():
            self._cancel_tree(cur, child["id"], now)
        cur.execute(Q["cancel_queued"], {"id": job_id, "now": now})
        row = cur.fetchone()
        if row is not None:
            cur.execute(Q["insert_event"], {
                "job_id": job_id, "from_status": job["status"], "to_status": "cancelled",
                "attempt": row["attempt"], "worker": None, "reason": "cancelled",
                "at": now, "detail": None,
            })
            cur.execute(Q["insert_callback_jobs"], {"ids": [job_id], "now": now})
            cur.execute(Q["notify_done"], {"ids": str(job_id)})
        else:
            cur.execute(Q["request_cancel"], {"id": job_id})

    def retry(self, job_id: int, *, tenant: str | None = None) -> Job:
        job = self.get_job(job_id, tenant=tenant)
        now = self.clock.now()
        with self._cursor(tx=True) as cur:
            cur.execute(Q["manual_retry"], {"id": job_id, "now": now})
            row = cur.fetchone()
            if row is not None:
                cur.execute(Q["insert_event"], {
                    "job_id": job_id, "from_status": job.status.value, "to_status": "queued",
                    "attempt": row["attempt"], "worker": None, "reason": "manual_retry",
                    "at": now, "detail": None,
                })
                cur.execute(Q["notify_jobs"], {"queues": [row["queue"]]})
        return self.get_job(job_id)

    def _leave_quarantine(
        self, job_id: int, *, to: str, reason: str, now: datetime,
        error: ErrorInfo | None, detail: dict[str, Any],
    ) -> bool:
        terminal = to != "queued"
        with self._cursor(tx=True) as cur:
            cur.execute(Q["leave_quarantine"], {
                "id": job_id, "status": to, "now": now,
                "error": Jsonb(error.to_json()) if error else None,
                "finished_at": now if terminal else None,
            })
            row = cur.fetchone()
            if row is None:
                return False
            cur.execute(Q["insert_event"], {
                "job_id": job_id, "from_status": "quarantined", "to_status": to,
                "attempt": row["attempt"], "worker": None, "reason": reason, "at": now,
                "detail": Jsonb(detail),
            })
            if terminal:
                cur.execute(Q["insert_callback_jobs"], {"ids": [job_id], "now": now})
                cur.execute(Q["notify_done"], {"ids": str(job_id)})
            else:
                cur.execute(Q["notify_jobs"], {"queues": [row["queue"]]})
        return True

    def set_queue(
        self,
        name: str,
        *,
        paused: bool | None = None,
        concurrency_limit: int | None = None,
        clear_limit: bool = False,
    ) -> QueueInfo:
        with self._cursor(tx=True) as cur:
            cur.execute(Q["upsert_queue"], {
                "name": name, "paused": paused, "concurrency_limit": concurrency_limit,
                "clear_limit": clear_limit,
            })
            cur.execute(Q["notify_jobs"], {"queues": [name]})
        self._limited_expires = 0.0  # this process sees its own change at once
        return self.queue(name)


__all__ = ["ControlOps"]
