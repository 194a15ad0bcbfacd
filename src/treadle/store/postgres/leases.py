"""The writes a PostgreSQL store takes about running jobs under their leases: the
heartbeat that renews them, an attempt's outcome and its log lines, and the reaper's
pass over expired ones.

The heartbeat, the outcome and the reap are each guarded by the job's lease token
(fencing): a write from a worker that lost its lease matches nothing, and an outcome's is
recorded as ``lease_lost`` (``_record_refused``). A batch's guarded update is one
statement built from arrays with ``unnest``, whatever its size. A mixin of
``PostgresStore``, kept apart from the store's plumbing so these fenced writes read next
to each other; the operator's writes are ``control.py``, and the reap of dead workers'
jobs, which writes through ``_reap_rows``, is ``workers.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

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
from treadle.store.rows import Codec, job_from_row

Q = load_queries("treadle.store.postgres")
Cursor = psycopg.Cursor[dict[str, Any]]
# ids per treadle_done payload: payloads are capped at 8000 bytes, ids are <= 20 chars.
_NOTIFY_CHUNK = 300


def _ts(value: datetime) -> datetime:
    return value


def _js(value: Any) -> Jsonb:
    return Jsonb(value)


class LeaseOps:
    clock: Clock
    codec: Codec
    _cursor: Callable[..., AbstractContextManager[Cursor]]
    _read_once: Callable[[str, Mapping[str, Any]], list[dict[str, Any]]]
    _absorb_notifications: Callable[[], None]  # PostgresStore's: the claim connection's

    def heartbeat(
        self, *, worker: str, leases: Sequence[tuple[int, int]], lease_seconds: float
    ) -> HeartbeatResult:
        self._absorb_notifications()
        now = self.clock.now()
        with self._cursor(tx=True) as cur:
            cur.execute(Q["upsert_worker"], {"worker": worker, "now": now,
                                             "lease_seconds": lease_seconds})
            if not leases:
                return HeartbeatResult()
            cur.execute(
                Q["heartbeat"],
                {"ids": [j for j, _ in leases], "tokens": [t for _, t in leases],
                 "expires": now + timedelta(seconds=lease_seconds)},
            )
            rows = cur.fetchall()
        held = {r["id"] for r in rows}
        return HeartbeatResult(
            lost=frozenset(j for j, _ in leases if j not in held),
            cancel_requested=frozenset(r["id"] for r in rows if r["cancel_requested"]),
        )

    def complete(self, outcomes: Sequence[Outcome]) -> list[bool]:
        outcomes = [storable_outcome(oc) for oc in outcomes]  # never raise on content
        if not outcomes:
            return []
        if len(outcomes) > _NOTIFY_CHUNK:  # one statement notifies all its ids at once
            return [ok for i in range(0, len(outcomes), _NOTIFY_CHUNK)
                    for ok in self.complete(outcomes[i : i + _NOTIFY_CHUNK])]
        now = self.clock.now()
        params = [finish_params(oc, now, _ts, _js) for oc in outcomes]
        arrays: dict[str, Any] = {k: [p[k] for p in params] for k in params[0]}
        arrays["worker"] = [oc.worker for oc in outcomes]
        arrays["reason"] = [oc.event_reason for oc in outcomes]
        arrays.update(usage.postgres_arrays(outcomes))  # ADR 0022
        arrays["now"] = now
        # One statement: guarded updates, events, callback deliveries and notifications.
        with self._cursor(tx=False) as cur:
            cur.execute(Q["finish_many"], arrays)
            done = {r["id"] for r in cur.fetchall()}
        refused = [(oc, p) for oc, p in zip(outcomes, params, strict=True)
                   if oc.job_id not in done]
        replayed: set[int] = set()
        if refused:  # rare: zombies, or replays of a write whose reply was lost
            with self._cursor(tx=True) as cur:
                replayed = self._record_refused(cur, refused, now)
        return [oc.job_id in done or oc.job_id in replayed for oc in outcomes]

    def _record_refused(
        self,
        cur: Cursor,
        refused: list[tuple[Outcome, dict[str, Any]]],
        now: datetime,
    ) -> set[int]:
        """Guarded writes that matched nothing: our own replays, or zombies (lease_lost)."""
        cur.execute(Q["jobs_status_token"], {"ids": [oc.job_id for oc, _ in refused]})
        current = {r["id"]: r for r in cur.fetchall()}
        replayed: set[int] = set()
        events = []
        for oc, p in refused:
            row = current.get(oc.job_id)
            if row is None:
                continue
            if row["lease_token"] == oc.lease_token and row["status"] == p["status"]:
                replayed.add(oc.job_id)  # already applied before a lost reply
                continue
            events.append({
                "job_id": oc.job_id, "from_status": row["status"], "to_status": row["status"],
                "attempt": row["attempt"], "worker": oc.worker, "reason": "lease_lost",
                "at": now, "detail": Jsonb(lease_lost_detail(oc, row["lease_token"])),
            })
        if events:
            cur.executemany(Q["insert_event"], events)
        return replayed

    def add_logs(self, job_id: int, attempt: int, lines: Sequence[str]) -> None:
        at = self.clock.now()
        with self._cursor(tx=True) as cur:
            cur.executemany(
                Q["insert_log"],
                [{"job_id": job_id, "attempt": attempt, "at": at, "message": m}
                 for m in storable_lines(lines)],
            )

    # -- maintenance ---------------------------------------------------------

    def reap(self, *, limit: int = 500) -> ReapResult:
        now = self.clock.now()
        if not self._read_once("any_expired", {"now": now}):
            return ReapResult()  # the common case: one indexed probe, no locks
        with self._cursor(tx=True) as cur:
            cur.execute(Q["expired_leases"], {"now": now, "limit": limit})
            rows = cur.fetchall()
            if not rows:
                return ReapResult()
            return self._reap_rows(cur, rows, now, seen_dead=False)

    def _reap_rows(self, cur: Cursor, rows: list[dict[str, Any]], now: datetime, *,
                   seen_dead: bool) -> ReapResult:
        """Decide for each locked row (crash or lapse, quarantine: ``store/crashes.py``) and
        write it with one guarded statement, with callbacks and wake-ups. ``seen_dead``:
        rows of workers whose session ended (ADR 0018), not of expired leases."""
        cols: dict[str, list[Any]] = {k: [] for k in (
            "id", "token", "status", "error", "reason", "worker", "crashes", "detail", "refund")}
        for r in rows:
            job = job_from_row(r, self.codec)
            assert job.lease_expires_at is not None
            d = reap_decision(
                attempt=job.attempt, max_attempts=job.max_attempts,
                cancel_requested=job.cancel_requested, owner=job.lease_owner,
                died=seen_dead or worker_died(r["owner_heartbeat"], r["owner_lease_seconds"],
                                              job.lease_expires_at),
                crashes=job.crashes, max_crashes=job.max_crashes, now=now,
                seen_dead=seen_dead,
            )
            cols["id"].append(r["id"])
            cols["token"].append(job.lease_token)
            cols["status"].append(d.status)
            cols["error"].append(Jsonb(d.error.to_json()))
            cols["reason"].append(d.reason)
            cols["worker"].append(r["lease_owner"])
            cols["crashes"].append(None if d.crashes is None else Jsonb(d.crashes))
            cols["detail"].append(None if d.detail is None else Jsonb(d.detail))
            cols["refund"].append(int(d.refund))
        cur.execute(Q["reap_many"], {**cols, "now": now})
        reaped = cur.fetchall()
        finished = [str(r["id"]) for r in reaped if r["status"] in ("failed", "cancelled")]
        if finished:
            ids = [int(i) for i in finished]
            cur.execute(Q["insert_callback_jobs"], {"ids": ids, "now": now})
            for i in range(0, len(finished), _NOTIFY_CHUNK):
                chunk = ",".join(finished[i : i + _NOTIFY_CHUNK])
                cur.execute(Q["notify_done"], {"ids": chunk})
        cur.execute(Q["notify_jobs"], {"queues": ["*"]})
        counts = {"queued": 0, "failed": 0, "cancelled": 0, "quarantined": 0}
        for r in reaped:
            counts[r["status"]] += 1
        return ReapResult(counts["queued"], counts["failed"], counts["cancelled"],
                          counts["quarantined"])


__all__ = ["LeaseOps"]
