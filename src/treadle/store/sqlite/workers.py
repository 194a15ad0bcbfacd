"""Worker liveness on SQLite (ADR 0018): a dead process is noticed on the one host.

A worker records its process identity (host, pid, start time) with its row. The reaper
of every worker asks, about each worker holding running jobs, whether that process still
runs (``core/liveness.py``); a pid that is gone or now names another process is a dead
worker, and its jobs are re-queued under the usual guard (status and lease token).
A mixin of ``SQLiteStore``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import astuple
from typing import Any

from treadle.core import liveness
from treadle.core.clock import Clock
from treadle.core.lease import ReapResult
from treadle.logs import get_logger
from treadle.store.queries import load_queries

Q = load_queries("treadle.store.sqlite")
log = get_logger("treadle.store")


class LivenessOps:
    clock: Clock
    _tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _read: Callable[[str, Mapping[str, Any]], Sequence[Mapping[str, Any]]]
    _notify: Callable[[], None]
    # LeaseOps' (leases.py): decide, write (guarded), events and callbacks for reaped rows.
    _reap_rows: Callable[..., ReapResult]

    def register_worker(self, worker: str) -> bool:
        """Record ``worker``'s process; True when its death can be noticed (Linux)."""
        ident = liveness.current()
        with self._tx() as conn:
            conn.execute(Q["register_worker"], {
                "worker": worker, "now": self.clock.now().timestamp(),
                "host": ident.host if ident else None, "pid": ident.pid if ident else None,
                "pid_start": ident.start if ident else None,
            })
        return ident is not None

    def unregister_worker(self, worker: str) -> None:
        """Nothing to release: the process's end is what others look for."""

    def _dead_owners(self) -> Iterator[str]:
        for r in self._read("running_owners", {}):
            if liveness.is_alive(r["host"], r["pid"], r["pid_start"]) is False:
                yield r["id"]

    def reap_dead(self, *, limit: int = 500) -> ReapResult:
        """Re-queue (or fail, or cancel) the running jobs of workers whose process is gone.

        One read without the write lock when everyone is alive."""
        dead = list(self._dead_owners())
        if not dead:
            return ReapResult()
        now = self.clock.now()
        res = ReapResult()
        with self._tx() as conn:
            for owner in dead:
                rows = conn.execute(Q["owner_leases"], {"owner": owner, "limit": limit})
                got = self._reap_rows(conn, rows.fetchall(), now, seen_dead=True)
                res = ReapResult(*(a + b for a, b in zip(astuple(res), astuple(got),
                                                         strict=True)))
        self._notify()
        return res


__all__ = ["LivenessOps"]
