"""The claim path of the SQLite store: one ``BEGIN IMMEDIATE`` transaction per claim.

The claim plan (one statement) says what is waiting: per-key limited jobs (ADR 0010),
rate limits, tenants to share slots between (fairness), then paused or limited queues
are claimed one by one under their limits; a suspect is claimed alone (ADR 0024). The
claim commits without waiting for the disk (ADR 0030). Separate from ``store.py``
because it is the hot path of every worker, read and tuned on its own, and it keeps that
module short. A mixin of ``SQLiteStore``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

from treadle.core.clock import Clock
from treadle.core.fairness import MAX_TENANTS, TenantLoad, allocate
from treadle.core.job import Job
from treadle.store.queries import load_queries
from treadle.store.rows import SQLITE_CODEC, dumps, job_from_row, sort_claimed
from treadle.store.rows import dt_to_epoch as _ts
from treadle.store.sqlite.waiting import BUSY_WINDOW

Q = load_queries("treadle.store.sqlite")


class ClaimOps:
    clock: Clock
    _local: threading.local
    _busy_until: float
    _tx: Callable[..., AbstractContextManager[sqlite3.Connection]]
    _mark: Callable[[], tuple[int, int]]
    rate_wait: Callable[[timedelta], None]

    def claim(
        self,
        *,
        queues: Sequence[str] | None,
        worker: str,
        limit: int,
        lease_seconds: float,
        kinds: Sequence[str] | None = None,
        suspect: bool = False,
    ) -> list[Job]:
        if limit <= 0:
            return []
        if suspect:  # a suspect is claimed alone (ADR 0024)
            limit = 1
        self._local.claim_mark = self._mark()  # see wait_for_work
        now = self.clock.now()
        base = {
            "worker": worker,
            "now": _ts(now),
            "expires": _ts(now + timedelta(seconds=lease_seconds)),
            # Only kinds this worker can run (ADR 0008); None: all.
            "kinds": None if kinds is None else dumps(list(kinds)),
            "suspect": int(suspect),
        }
        # Raw rows while the write lock is held; decoded into jobs after COMMIT (issue 13).
        claimed: list[Mapping[str, Any]] = []
        # The claim's commit does not wait for the disk (ADR 0030): what a power loss
        # undoes here, it undoes with this host's workers, and the jobs are queued again.
        with self._tx(flush=False) as conn:
            scope = {**base, "queues": None if queues is None else dumps(list(queues))}
            plan = conn.execute(Q["claim_plan"], {**scope, "scan": limit * 8,
                                                  "max_tenants": MAX_TENANTS}).fetchall()
            for r in plan:
                if r["what"] == "rate":
                    self.rate_wait(timedelta(seconds=r["period"]))
            # Per-key limited jobs first (ADR 0010): the other paths never take them.
            taken: dict[str, int] = {}  # claimed here per concurrency key (plan counts before)
            now_ts = _ts(now)
            for cand in (r for r in plan if r["what"] == "key"):
                period = cand["period"]
                if period is not None:  # rate limit: starts within the sliding window
                    room = self._rate_room(conn, cand["name"], cand["n"], period, now_ts)
                else:
                    room = cand["n"] - cand["running"] - taken.get(cand["name"], 0)
                if cand["rkey"] is not None and room > 0:  # and a rate limit beside it
                    room = min(room, self._rate_room(conn, cand["rkey"], cand["rn"],
                                                     cand["rperiod"], now_ts))
                n = min(limit - len(claimed), room)
                if n > 0:
                    rows = conn.execute(Q["claim_key"], {
                        **scope, "key": cand["name"], "limit": n, "period": period,
                        "rkey": cand["rkey"]}).fetchall()
                    claimed.extend(rows)
                    if period is None:
                        taken[cand["name"]] = taken.get(cand["name"], 0) + len(rows)
            special = {r["name"]: r for r in conn.execute(Q["paused_or_limited_queues"])}
            tenants = [TenantLoad(r["name"], r["n"], r["running"])
                       for r in plan if r["what"] == "tenant"]
            if len(tenants) > 1 and limit > len(claimed):
                # Several tenants waiting: share the slots by weight (limited queues keep
                # their own path below).
                fair = {**scope, "excluded": dumps(list(special))}
                for tenant, n in allocate(tenants, limit - len(claimed)).items():
                    rows = conn.execute(Q["claim_tenant"], {**fair, "tenant": tenant,
                                                            "limit": n}).fetchall()
                    claimed.extend(rows)
            if queues is None:
                excluded = [n for n, r in special.items() if r["paused"]]
                # Limited queues are claimed one by one below, under their limit.
                limited = [n for n, r in special.items() if not r["paused"]]
                rows = conn.execute(
                    Q["claim_any"],
                    {**base, "limit": limit - len(claimed), "excluded": dumps(excluded + limited)},
                ).fetchall()
                claimed.extend(rows)
                queues = limited
            for queue in queues:
                room = limit - len(claimed)
                cfg = special.get(queue)
                if cfg is not None:
                    if cfg["paused"]:
                        continue
                    if cfg["concurrency_limit"] is not None:
                        running = conn.execute(Q["running_in_queue"], {"queue": queue}).fetchone()
                        room = min(room, cfg["concurrency_limit"] - running[0])
                if room <= 0:
                    continue
                rows = conn.execute(
                    Q["claim_queue"], {**base, "queue": queue, "limit": room}
                ).fetchall()
                claimed.extend(rows)
            if claimed:  # their `claimed` events, one statement for the batch
                conn.execute(Q["insert_claim_events"], {
                    "jobs": dumps([[r["id"], r["attempt"]] for r in claimed]),
                    "worker": worker, "now": base["now"]})
        if claimed:
            self._busy_until = time.monotonic() + BUSY_WINDOW
        return sort_claimed([job_from_row(r, SQLITE_CODEC) for r in claimed])

    def _rate_room(self, conn: sqlite3.Connection, key: str, starts: int, period: float,
                   now: float) -> int:
        """Starts ``key`` may still make in its sliding window (inside the claim's
        transaction, so this claim's own starts count); when none, wake by its end."""
        win = conn.execute(Q["started_in_window"], {"key": key, "since": now - period}).fetchone()
        if win["n"] >= starts and win["oldest"] is not None:
            self.rate_wait(timedelta(seconds=win["oldest"] + period - now))
        return int(starts - win["n"])


__all__ = ["ClaimOps"]
