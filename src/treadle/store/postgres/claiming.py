"""How a PostgreSQL store claims and waits: the claim plan, the claim statements, the
waits for work and for jobs to finish (ADRs 0017, 0030, 0031).

A mixin of ``PostgresStore``, kept apart so the store's write side and its pickup path
each read on their own: everything between a notification and a claimed job is here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import pq

from treadle.core.clock import Clock
from treadle.core.fairness import MAX_TENANTS, TenantLoad, allocate
from treadle.core.job import Job
from treadle.store.base import Parking
from treadle.store.flow import KeyPlan
from treadle.store.postgres.claimconn import ClaimConnection
from treadle.store.postgres.errors import translated
from treadle.store.postgres.listener import Listener
from treadle.store.queries import load_queries
from treadle.store.rows import Codec, job_from_row, sort_claimed

Q = load_queries("treadle.store.postgres")
Cursor = psycopg.Cursor[dict[str, Any]]

_LIMITED_TTL = 1.0  # seconds a claimer trusts its list of concurrency-limited queues
# Seconds a claimer trusts a plan that had nothing to share out (one tenant or none, no
# per-key limits): it skips the plan's round trip meanwhile (ADR 0017, ADR 0030).
_PLAN_TTL = 1.0
# The longest an idle wait for work lasts with nothing queued (ADR 0029): a safety net for
# a job queued by a writer that did not notify (a foreign tool writing the table).
_IDLE_WAIT_CAP = 16.0


class ClaimOps:
    clock: Clock
    codec: Codec
    _cc: ClaimConnection
    _cc_use: threading.Lock
    _listener: Listener
    _pinned: threading.local
    _claim_mark: threading.local
    _limited: dict[str, int]
    _limited_expires: float
    _plan_trivial_until: float
    _safety_poll: float
    _cursor: Callable[..., AbstractContextManager[Cursor]]
    _read: Callable[[str, Mapping[str, Any]], list[dict[str, Any]]]
    _read_once: Callable[[str, Mapping[str, Any]], list[dict[str, Any]]]
    rate_wait: Callable[[timedelta], None]
    _park: Callable[[Parking], None]  # HandoffOps
    _claimed_ordinarily: Callable[[str], None]
    rate_clamp: Callable[[float], float]

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
        self._claim_mark.suspect = None  # only this claim's plan may answer the next look
        cc = self._cc
        if not self._cc_use.acquire(blocking=False):
            # Another thread claims or waits on the claim connection: a pooled one. Note
            # the notification count before looking, so that work enqueued between this
            # claim and the next wait_for_work wakes that wait at once (no lost wake-up).
            self._listener.ensure_started()
            self._claim_mark.seen = ("listener", self._listener.work_seq())
            jobs = self._claim(queues=queues, worker=worker, limit=limit,
                               lease_seconds=lease_seconds, kinds=kinds, suspect=suspect)
            if jobs:
                self._claimed_ordinarily(worker)  # ADR 0034
            return jobs
        # The claim runs on the connection that listens for work and woke the wait: its
        # backend has just run, and the wake-up needed no second thread (ADR 0031).
        try:
            with translated():
                conn = self._pinned.conn = cc.connection()
            self._claim_mark.seen = ("cc", cc.mark())
            try:
                jobs = self._claim(queues=queues, worker=worker, limit=limit,
                                   lease_seconds=lease_seconds, kinds=kinds, suspect=suspect)
                if jobs:
                    self._claimed_ordinarily(worker)  # ADR 0034
                return jobs
            finally:
                self._pinned.conn = None
                if conn.closed or conn.info.transaction_status != pq.TransactionStatus.IDLE:
                    cc.discard()  # lost, or left mid-statement: a new one next time
        finally:
            self._cc_use.release()

    def _claim(
        self,
        *,
        queues: Sequence[str] | None,
        worker: str,
        limit: int,
        lease_seconds: float,
        kinds: Sequence[str] | None,
        suspect: bool,
    ) -> list[Job]:
        now = self.clock.now()
        base = {"worker": worker, "now": now, "expires": now + timedelta(seconds=lease_seconds),
                "kinds": None if kinds is None else list(kinds), "suspect": suspect}
        scope = {**base, "queues": None if queues is None else list(queues)}
        mono = self.clock.monotonic()
        plan: list[dict[str, Any]] = []
        skipped = not suspect and mono < self._plan_trivial_until
        if not skipped:
            rows = self._read_once("claim_plan", {**scope, "scan": limit * 8, "keys": limit,
                                                  "max_tenants": MAX_TENANTS})
            # Whether a suspect is due rides with the plan: the worker's look for one after
            # an empty claim (which always read a plan) costs no round trip (ADR 0031).
            self._claim_mark.suspect = (scope["queues"], base["kinds"], mono,
                                        any(r["what"] == "suspect" for r in rows))
            plan = [r for r in rows if r["what"] != "suspect"]
            if not plan:
                # No tenant has queued work, no key either: nothing to claim. Nothing to
                # share out either, so the next claims take the fast path straight away
                # (the work that wakes an idle worker costs it one round trip, not two).
                self._plan_trivial_until = mono + _PLAN_TTL
                return []
            trivial = sum(r["what"] == "tenant" for r in plan) <= 1 and all(
                r["what"] == "tenant" for r in plan)
            self._plan_trivial_until = mono + _PLAN_TTL if trivial else 0.0
        # Per-key limited jobs first (ADR 0010): the other paths never take them.
        keys = [KeyPlan(r["name"], r["n"], r["period"], r["rkey"], r["rn"], r["rperiod"])
                for r in plan if r["what"] == "key"]
        for r in plan:
            if r["what"] == "rate":
                self.rate_wait(timedelta(seconds=r["period"]))
        claimed: list[Job] = self._claim_keyed(keys, scope, limit) if keys else []
        limited = self._limited_queues()
        tenants = [TenantLoad(r["name"], r["n"], r["running"])
                   for r in plan if r["what"] == "tenant"]
        room = limit - len(claimed)
        if room > 0 and len(tenants) > 1:
            # Several tenants waiting: share the slots by weight, in one statement.
            shares = allocate(tenants, room)
            with self._cursor(tx=False) as cur:
                cur.execute(Q["claim_fair"], {**scope, "tenants": list(shares),
                                              "counts": list(shares.values())})
                claimed.extend(job_from_row(r, self.codec) for r in cur.fetchall())
        # Fast path (one tenant), and the fill-up so a share a tenant could not use never
        # leaves a slot idle: one statement per queue (or one for all queues), each atomic
        # on its own. Paused and limited queues are left out by the statement itself.
        with self._cursor(tx=False) as cur:
            if queues is None:
                if len(claimed) < limit:
                    cur.execute(Q["claim_any"], {**base, "limit": limit - len(claimed)})
                    claimed.extend(job_from_row(r, self.codec) for r in cur.fetchall())
            else:
                for queue in queues:
                    room = limit - len(claimed)
                    if room <= 0 or queue in limited:
                        continue
                    cur.execute(
                        Q["claim_queue"], {**base, "queue": queue, "limit": room,
                                           "limited_ok": False},
                    )
                    claimed.extend(job_from_row(r, self.codec) for r in cur.fetchall())
        wanted = [q for q in limited if queues is None or q in queues]
        if wanted and len(claimed) < limit:
            claimed.extend(self._claim_limited(wanted, limited, base, limit - len(claimed)))
        if skipped and not claimed:
            # Nothing by the fast path: plan now (keyed work or another tenant may wait).
            self._plan_trivial_until = 0.0
            return self._claim(queues=queues, worker=worker, limit=limit,
                               lease_seconds=lease_seconds, kinds=kinds, suspect=suspect)
        return sort_claimed(claimed)

    def _limited_queues(self) -> dict[str, int]:
        """Queues with a concurrency limit, re-read at most every second.

        The claim statements exclude limited queues themselves, so a stale view can
        only delay a newly limited queue's jobs (never run them past the limit)."""
        now = time.monotonic()
        if now >= self._limited_expires:
            rows = self._read_once("limited_queues", {})
            self._limited = {r["name"]: r["concurrency_limit"] for r in rows}
            self._limited_expires = now + _LIMITED_TTL
        return self._limited

    def _claim_limited(
        self, queues: list[str], limits: dict[str, int], base: dict[str, Any], room: int
    ) -> list[Job]:
        """Claim from limited queues under a per-queue lock, so the running count holds."""
        out: list[Job] = []
        with self._cursor(tx=True) as cur:
            for queue in queues:
                if room - len(out) <= 0:
                    break
                cur.execute(Q["lock_queue"], {"queue": queue})
                cur.execute(Q["running_in_queue"], {"queue": queue})
                row = cur.fetchone()
                n = min(room - len(out), limits[queue] - (row["count"] if row else 0))
                if n <= 0:
                    continue
                cur.execute(Q["claim_queue"], {**base, "queue": queue, "limit": n,
                                               "limited_ok": True})
                out.extend(job_from_row(r, self.codec) for r in cur.fetchall())
        return out

    def _claim_keyed(
        self, keys: list[KeyPlan], scope: dict[str, Any], room: int
    ) -> list[Job]:
        """Claim jobs under per-key limits, every planned key under its lock so the counts
        hold (taken together, in one fixed order: see lock_keys)."""
        out: list[Job] = []
        with self._cursor(tx=True) as cur:
            wanted = {k.key for k in keys} | {k.rkey for k in keys if k.rkey is not None}
            cur.execute(Q["lock_keys"], {"keys": sorted(wanted)})
            for k in keys:
                if room - len(out) <= 0:
                    break
                if k.period is None:
                    cur.execute(Q["running_with_key"], {"key": k.key})
                    row = cur.fetchone()
                    n = k.limit - (row["n"] if row else 0)
                else:  # rate limit: starts within the sliding window
                    n = self._rate_room(cur, k.key, k.limit, k.period, scope["now"])
                if k.rkey is not None and k.rlimit is not None and k.rperiod is not None \
                        and n > 0:
                    n = min(n, self._rate_room(cur, k.rkey, k.rlimit, k.rperiod, scope["now"]))
                n = min(room - len(out), n)
                if n > 0:
                    cur.execute(Q["claim_key"], {**scope, "key": k.key, "limit": n,
                                                 "period": k.period, "rkey": k.rkey})
                    out.extend(job_from_row(r, self.codec) for r in cur.fetchall())
        return out

    def _rate_room(self, cur: Any, key: str, starts: int, period: float, now: datetime) -> int:
        """Starts ``key`` may still make in its sliding window; when none, wake by its end."""
        cur.execute(Q["started_in_window"], {"key": key, "since": now - timedelta(seconds=period)})
        row = cur.fetchone()
        used = int(row["n"]) if row and row["n"] is not None else 0
        if used >= starts and row is not None and row["oldest"] is not None:
            self.rate_wait(row["oldest"] + timedelta(seconds=period) - now)
        return starts - used

    def interrupt(self) -> None:
        # Sticky on both: the wait that comes next, on either, ends at once.
        self._listener.interrupt()
        self._cc.interrupt()

    def wait_for_work(self, timeout: float, park: Parking | None = None) -> bool:
        timeout = self.rate_clamp(timeout)
        mark: tuple[str, int] | None = getattr(self._claim_mark, "seen", None)
        self._claim_mark.seen = None
        if not self._cc_use.acquire(blocking=False):
            return self._wait_on_listener(mark, timeout)
        try:
            # The worker's idle wait: on its claim connection (ADR 0031).
            cc = self._cc
            if mark is not None and mark[0] != "cc":
                return True  # the last claim noted the Listener's count: look again
            seen = cc.mark() if mark is None else mark[1]
            refresh = cc.connected and \
                time.monotonic() >= self._limited_expires - _LIMITED_TTL / 2
            if refresh or park is not None:
                generation = cc.generation
                with translated():
                    self._pinned.conn = cc.connection()
                try:
                    if refresh:
                        # The list of limited queues would run out soon: read it now,
                        # idle, so the claim this wait leads to does not read it first.
                        self._limited_expires = 0.0
                        self._limited_queues()
                    if park is not None:
                        self._park(park)  # ADR 0034
                finally:
                    self._pinned.conn = None
                if cc.generation != generation:
                    return True  # connected anew: what happened meanwhile is unknown
            if cc.wait(seen, timeout):
                if cc.mark() == seen:
                    # Woken by a hand-off alone: the next wait still counts from here,
                    # so work announced meanwhile is not taken for seen.
                    self._claim_mark.seen = ("cc", seen)
                return True
            if self._nothing_queued():
                return cc.wait(seen, max(0.0, _IDLE_WAIT_CAP - timeout))
            return False
        finally:
            self._cc_use.release()

    def _wait_on_listener(self, mark: tuple[str, int] | None, timeout: float) -> bool:
        """A second thread's wait while the claim connection is in use."""
        self._listener.ensure_started()
        if mark is not None and mark[0] != "listener":
            return True
        seen = self._listener.work_seq() if mark is None else mark[1]
        if self._listener.wait_work(seen, timeout):
            return True
        if self._nothing_queued():
            return self._listener.wait_work(seen, max(0.0, _IDLE_WAIT_CAP - timeout))
        return False

    def _nothing_queued(self) -> bool:
        """No notification within the poll. With no job queued at all only a commit can
        give work, and every commit that queues a job notifies (a wait that reconnects
        reports a wake-up too): the wait goes on for one, up to the cap, instead of an idle
        claim every poll (ADR 0029). Queued work that could not be claimed (a back-off, a
        pause, a limit) keeps the poll."""
        return not self._read_once("any_queued", {})[0]["queued"]

    def wait_for_finish(self, job_ids: Sequence[int], timeout: float) -> None:
        self._listener.ensure_started()
        deadline = time.monotonic() + timeout
        pending = set(job_ids)
        while pending:
            seen = self._listener.done_seq()  # before looking: no lost wake-up
            rows = self._read("jobs_finished", {"ids": list(pending)})
            pending -= {r["id"] for r in rows}
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                return
            self._listener.wait_done(seen, min(remaining, self._safety_poll))
