"""Worker liveness on PostgreSQL (ADR 0018): register, unregister, reap the dead.

A mixin of ``PostgresStore``, kept apart so the store's hot path reads on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row

from treadle.core import liveness
from treadle.core.clock import Clock
from treadle.core.lease import ReapResult
from treadle.logs import get_logger
from treadle.store.postgres.session import WorkerSession
from treadle.store.queries import load_queries

Q = load_queries("treadle.store.postgres")
log = get_logger("treadle.store")
Cursor = psycopg.Cursor[dict[str, Any]]

# How long a starting worker waits for its liveness lock before claiming anyway (its
# jobs are then guarded by their leases only, as before ADR 0018).
REGISTER_TIMEOUT = 10.0


class LivenessOps:
    url: str
    clock: Clock
    _sessions: dict[str, WorkerSession]
    _sessions_lock: threading.Lock

    # LeaseOps' (leases.py): decide, write (guarded), callbacks and wake-ups for reaped rows.
    _reap_rows: Callable[..., ReapResult]

    def register_worker(self, worker: str) -> bool:
        """Hold ``worker``'s liveness lock on a dedicated connection and record it.

        True once held; False if the database did not answer in time (the session goes
        on trying in the background, and meanwhile only leases guard the worker's jobs).
        """
        ident = liveness.current()

        def record(conn: psycopg.Connection[Any], key: int) -> None:
            conn.execute(Q["register_worker"], {
                "worker": worker, "now": self.clock.now(), "lock_key": key,
                "host": ident.host if ident else None, "pid": ident.pid if ident else None,
                "pid_start": ident.start if ident else None,
            })

        session = WorkerSession(self.url, worker, record)
        with self._sessions_lock:
            old = self._sessions.pop(worker, None)
            self._sessions[worker] = session
        if old is not None:
            old.stop()
        ok = session.start(REGISTER_TIMEOUT)
        if not ok:
            log.warning("worker liveness lock not held yet; leases guard its jobs meanwhile",
                        worker=worker)
        return ok

    def unregister_worker(self, worker: str) -> None:
        """End the worker's session: its lock (and any leadership) is released."""
        with self._sessions_lock:
            session = self._sessions.pop(worker, None)
        if session is not None:
            session.stop()

    def _stop_sessions(self) -> None:
        with self._sessions_lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for s in sessions:
            s.stop()

    def reap_dead(self, *, limit: int = 500) -> ReapResult:
        """Re-queue (or fail, or cancel) the running jobs of workers whose session ended.

        Only the liveness leader's process looks (one query per pass per database);
        elsewhere this is free. Guarded by each job's lease token (fencing unchanged)."""
        with self._sessions_lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            res = s.as_leader(lambda conn: self._reap_dead_on(conn, limit))
            if res is not None:
                return res
        return ReapResult()

    def _reap_dead_on(self, conn: psycopg.Connection[Any], limit: int) -> ReapResult:
        now = self.clock.now()
        with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute(Q["dead_owner_leases"], {"limit": limit})
            rows = cur.fetchall()
            if not rows:
                return ReapResult()
            return self._reap_rows(cur, rows, now, seen_dead=True)


__all__ = ["LivenessOps"]
