"""The writes an SQLite store takes about running jobs under their leases: the
heartbeat that renews them, an attempt's outcome and its log lines, and the reaper's
pass over expired ones.

The heartbeat, the outcome and the reap are each guarded by the job's lease token
(fencing): a write from a worker that lost its lease matches nothing, and an outcome's is
recorded as ``lease_lost`` (``_refused``). Outcomes are written set-based, a batch in a
few statements under one write lock (ADR 0028). A mixin of ``SQLiteStore``, kept apart
from the store's connections so these fenced writes read next to each other; the
operator's writes are ``control.py``, and the reap of dead workers' jobs, which writes
through ``_reap_rows``, is ``workers.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

from treadle.core.clock import Clock
from treadle.core.lease import HeartbeatResult, ReapResult
from treadle.core.outcome import Outcome
from treadle.store import usage
from treadle.store.crashes import reap_decision, worker_died
from treadle.store.outcomes import (
    finish_params,
    lease_lost_detail,
    storable_lines,
    storable_outcome,
)
from treadle.store.queries import load_queries
from treadle.store.rows import SQLITE_CODEC, dumps, job_from_row
from treadle.store.rows import dt_to_epoch as _ts
from treadle.store.sqlite.events import EventWrites

Q = load_queries("treadle.store.sqlite")
USAGE_Q = load_queries("treadle.store.sqlite", "usage_queries.sql")


class LeaseOps(EventWrites):
    clock: Clock
    _tx: Callable[..., AbstractContextManager[sqlite3.Connection]]
    _read: Callable[[str, Mapping[str, Any]], Sequence[Mapping[str, Any]]]
    _notify: Callable[[], None]  # WaitOps'


    def heartbeat(
        self, *, worker: str, leases: Sequence[tuple[int, int]], lease_seconds: float
    ) -> HeartbeatResult:
        now = self.clock.now()
        expires = _ts(now + timedelta(seconds=lease_seconds))
        held: set[int] = set()
        cancel: set[int] = set()
        with self._tx() as conn:
            conn.execute(Q["upsert_worker"], {"worker": worker, "now": _ts(now), "info": "{}",
                                              "lease_seconds": lease_seconds})
            for job_id, token in leases:
                row = conn.execute(
                    Q["heartbeat"], {"id": job_id, "token": token, "expires": expires}
                ).fetchone()
                if row is not None:
                    held.add(job_id)
                    if row["cancel_requested"]:
                        cancel.add(job_id)
        lost = frozenset(j for j, _ in leases if j not in held)
        return HeartbeatResult(lost=lost, cancel_requested=frozenset(cancel))

    def complete(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """Write a batch of outcomes in one transaction, each guarded by its lease token.

        Set-based (issue 13): one ``finish_batch`` update for the batch, one statement for
        its events and one for its usage rows, whatever the batch's size, so SQLite's one
        write lock is held for a few statements, not three per job. What that update
        cannot take (an outcome with a ``run_at`` of its own, a job twice in one batch)
        and what it refused (a replay, a zombie) is written one by one, as before."""
        outcomes = [storable_outcome(oc) for oc in outcomes]  # never raise on content
        now = self.clock.now()
        at = _ts(now)
        # Everything but the statements is built before the write lock is taken: the
        # rows, each outcome's usage values and event detail (cleaning a usage and
        # encoding an error inside the transaction held SQLite's one write lock ~0.5 ms
        # longer per batch of ~80, while every other worker waited for it).
        fields = [usage.usage_fields(oc) for oc in outcomes]
        details = [dumps({"error": oc.error.to_json()}) if oc.error else None
                   for oc in outcomes]
        batch: list[list[Any]] = []
        alone: set[int] = set()  # positions written one by one
        seen: set[int] = set()
        for i, oc in enumerate(outcomes):
            if oc.run_at is not None or oc.job_id in seen:
                alone.add(i)
                continue
            seen.add(oc.job_id)
            params = finish_params(oc, now, _ts, dumps)
            status = params["status"]
            batch.append([oc.job_id, oc.lease_token, status, params["result"],
                          params["error"], params["payload"], params["extra_attempts"],
                          params["finished_at"] is not None, status == "queued"])
        accepted: dict[int, bool] = {}
        with self._tx() as conn:
            rows = conn.execute(Q["finish_batch"], {"outcomes": dumps(batch), "now": at}
                                ).fetchall() if batch else []
            by_id = {r["id"]: r for r in rows}
            events: list[list[Any]] = []
            used: list[dict[str, Any]] = []  # the accepted attempts' usage rows (ADR 0022)
            callbacks: list[int] = []
            for i, oc in enumerate(outcomes):
                row = by_id.get(oc.job_id)
                if row is None or i in alone:
                    continue
                accepted[i] = True
                self._accepted(oc, row, at, fields[i], details[i], events, used, callbacks)
            for i, oc in enumerate(outcomes):
                if i in accepted:
                    continue
                if i in alone:  # not in the batch update: the guarded update of its own
                    params = finish_params(oc, now, _ts, dumps)
                    row = conn.execute(Q["finish"], params).fetchone()
                    if row is not None:
                        accepted[i] = True
                        self._accepted(oc, row, at, fields[i], details[i], events, used,
                                       callbacks)
                        continue
                accepted[i] = self._refused(conn, oc, oc.kind.to_status.value, now)
            if events:  # one statement each for the batch, in its transaction
                conn.execute(Q["insert_finish_events"], {"events": dumps(events), "now": at})
            if used:
                conn.executemany(USAGE_Q["insert_usage"], used)
            for job_id in callbacks:
                self._callback(conn, job_id, now)
        self._notify()
        return [accepted[i] for i in range(len(outcomes))]

    @staticmethod
    def _accepted(oc: Outcome, row: Any, at: float, fields: dict[str, Any] | None,
                  detail: str | None, events: list[list[Any]], used: list[dict[str, Any]],
                  callbacks: list[int]) -> None:
        """What an accepted outcome writes besides its job row: its event (each attempt's
        error stays in its event, after the job's moves on), its usage row (``fields``,
        built before the transaction), and the delivery job of a finished job's
        callback."""
        status = oc.kind.to_status
        events.append([oc.job_id, status.value, row["attempt"], oc.worker, oc.event_reason,
                       detail])
        if row["callback_url"] and status.is_terminal:
            callbacks.append(oc.job_id)
        if fields is not None:  # what the attempt cost, with it (ADR 0022)
            used.append({**fields, "job_id": oc.job_id, "attempt": row["attempt"],
                         "tenant": row["tenant"], "queue": row["queue"], "kind": row["kind"],
                         "task": row["task"], "now": at})

    def _refused(self, conn: sqlite3.Connection, oc: Outcome, status: str, now: datetime) -> bool:
        """A guarded write matched nothing: a replay of our own write, or a zombie."""
        cur = conn.execute(Q["job_status_token"], {"id": oc.job_id}).fetchone()
        if cur is None:
            return False
        if cur["lease_token"] == oc.lease_token and cur["status"] == status:
            return True  # the same outcome was already applied (retried after a lost reply)
        self._event(
            conn, oc.job_id, cur["status"], cur["status"], cur["attempt"], oc.worker,
            "lease_lost", now, dumps(lease_lost_detail(oc, cur["lease_token"])),
        )
        return False

    def add_logs(self, job_id: int, attempt: int, lines: Sequence[str]) -> None:
        at = _ts(self.clock.now())
        with self._tx() as conn:
            conn.executemany(
                Q["insert_log"],
                [{"job_id": job_id, "attempt": attempt, "at": at, "message": m}
                 for m in storable_lines(lines)],
            )

    # -- maintenance ---------------------------------------------------------

    def reap(self, *, limit: int = 500) -> ReapResult:
        now = self.clock.now()
        # Cheap when nothing expired: one indexed read, no write lock.
        if not self._read("expired_leases", {"now": _ts(now), "limit": 1}):
            return ReapResult()
        with self._tx() as conn:
            rows = conn.execute(Q["expired_leases"], {"now": _ts(now), "limit": limit}).fetchall()
            res = self._reap_rows(conn, rows, now, seen_dead=False)
        if res.requeued:
            self._notify()
        return res

    def _reap_rows(self, conn: sqlite3.Connection, rows: Sequence[Any],
                   now: datetime, *, seen_dead: bool) -> ReapResult:
        """Decide for each row (crash or lapse, quarantine: ``store/crashes.py``) and write
        it guarded by its token, with its event and callback. ``seen_dead``: rows of a
        worker whose process is gone (ADR 0018), not of expired leases."""
        counts = {"queued": 0, "failed": 0, "cancelled": 0, "quarantined": 0}
        for r in rows:
            job = job_from_row(r, SQLITE_CODEC)
            assert job.lease_expires_at is not None
            died = seen_dead or worker_died(SQLITE_CODEC.opt_ts(r["owner_heartbeat"]),
                                            r["owner_lease_seconds"], job.lease_expires_at)
            d = reap_decision(
                attempt=job.attempt, max_attempts=job.max_attempts,
                cancel_requested=job.cancel_requested, owner=job.lease_owner,
                died=died, crashes=job.crashes, max_crashes=job.max_crashes, now=now,
                seen_dead=seen_dead,
            )
            terminal = d.status in ("failed", "cancelled")
            cur = conn.execute(
                Q["reap_one"],
                {
                    "id": r["id"], "token": job.lease_token, "seen_dead": int(seen_dead),
                    "status": d.status, "error": dumps(d.error.to_json()),
                    "now": _ts(now), "finished_at": _ts(now) if terminal else None,
                    "crashes": None if d.crashes is None else dumps(d.crashes),
                    "refund": int(d.refund),
                },
            )
            if cur.rowcount:
                counts[d.status] += 1
                conn.execute(USAGE_Q["insert_reap_usage"], {
                    "job_id": r["id"], "status": d.status, "now": _ts(now),
                    "error_class": d.error.error_class.value})
                self._event(conn, r["id"], "running", d.status, r["attempt"],
                            r["lease_owner"], d.reason, now,
                            None if d.detail is None else dumps(d.detail))
                if terminal:
                    self._callback(conn, r["id"], now)
        return ReapResult(counts["queued"], counts["failed"], counts["cancelled"],
                          counts["quarantined"])


__all__ = ["LeaseOps"]
