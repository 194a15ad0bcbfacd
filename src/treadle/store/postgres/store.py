"""The PostgreSQL store: ``FOR UPDATE SKIP LOCKED`` claims, ``LISTEN/NOTIFY`` wake-ups.

Every batch operation (enqueue many, claim many, complete many, reap) is one
statement built from arrays with ``unnest``, so its cost is one round trip
whatever the batch size. ``synchronous_commit`` is left as the server has it, but for
unlimited claims, which commit without waiting for the flush (ADR 0030).

The module is longer than most on purpose: it is one backend's whole write side of
the Store protocol, kept together so every guarded write reads next to the others.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import Any, LiteralString, TypeVar

import psycopg
import psycopg_pool
from psycopg import pq
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.errors import ErrorInfo, StoreError, StoreUnavailable, ValueOutOfRange
from treadle.core.fairness import MAX_TENANTS, TenantLoad, allocate
from treadle.core.job import Enqueued, Job, NewJob, QueueInfo
from treadle.core.lease import HeartbeatResult, ReapResult
from treadle.core.outcome import Outcome
from treadle.logs import route_stdlib
from treadle.store import usage
from treadle.store.common import SqlReads
from treadle.store.crashes import reap_decision, worker_died
from treadle.store.flow import FlowOps, KeyPlan
from treadle.store.groupcommit import GroupCommitter, Guard, Result, Submission
from treadle.store.migrations import MigrationRunner, plugin_migrations_package
from treadle.store.outcomes import (
    finish_params,
    lease_lost_detail,
    storable_lines,
    storable_outcome,
)
from treadle.store.postgres.claimconn import ClaimConnection
from treadle.store.postgres.connect import check_url, connect_kwargs
from treadle.store.postgres.dbclock import DatabaseClock
from treadle.store.postgres.errors import translate, translated
from treadle.store.postgres.inserts import job_document, match_inserted
from treadle.store.postgres.listener import Listener
from treadle.store.postgres.plaininsert import insert_plain, libpq_text
from treadle.store.postgres.retry import NotSent, Reconnect, borrow, is_connection_lost
from treadle.store.postgres.session import WorkerSession
from treadle.store.postgres.workers import LivenessOps
from treadle.store.quarantine import QuarantineOps
from treadle.store.queries import load_queries
from treadle.store.rows import POSTGRES_CODEC, job_from_row, sort_claimed
from treadle.store.transaction import StoreTransaction

T = TypeVar("T")
Cursor = psycopg.Cursor[dict[str, Any]]
Q = load_queries("treadle.store.postgres")
_INSERT_JOBS_LIBPQ = libpq_text(Q["insert_jobs"])  # see plaininsert.py
# ids per treadle_done payload: payloads are capped at 8000 bytes, ids are <= 20 chars.
_NOTIFY_CHUNK = 300
_LIMITED_TTL = 1.0  # seconds a claimer trusts its list of concurrency-limited queues
# Seconds a claimer trusts a plan that had nothing to share out (one tenant or none, no
# per-key limits): it skips the plan's round trip meanwhile (ADR 0017, ADR 0030).
_PLAN_TTL = 1.0
# How long the suspect look's answer read with a claim's plan stands in for the look itself.
_SUSPECT_ANSWER_TTL = 0.5
# The longest an idle wait for work lasts with nothing queued (ADR 0029): a safety net for
# a job queued by a writer that did not notify (a foreign tool writing the table).
_IDLE_WAIT_CAP = 16.0


def _ts(value: datetime) -> datetime:
    return value


def _js(value: Any) -> Jsonb:
    return Jsonb(value)


class PostgresStore(SqlReads, FlowOps, QuarantineOps, LivenessOps):
    codec = POSTGRES_CODEC
    backend = "postgres"

    def __init__(
        self,
        url: str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        pool_size: int = 4,
        timeout: float = 10.0,
        reconnect: Reconnect | None = None,
        safety_poll: float = 1.0,
    ) -> None:
        self.url = check_url(url)
        # Lease times come from the server's clock unless a test injected its own (ADR 0010).
        self.clock: Clock = DatabaseClock(self._server_time) if clock is SYSTEM_CLOCK else clock
        # The pool warns about connections it discards and replaces (a server restart):
        # handled here, so those go to structlog at info level, not raw to stderr.
        route_stdlib("psycopg", demote={logging.WARNING: logging.INFO})
        self._reconnect = reconnect or Reconnect()
        self._timeout = timeout
        # Seconds between re-reads while waiting for a job, in case a notification is lost.
        self._safety_poll = safety_poll
        self._pool = psycopg_pool.ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "row_factory": dict_row, **connect_kwargs()},
            timeout=timeout,
            open=False,
            name="treadle",
        )
        self._pool.open(wait=False)
        # Job waiters (wait_for_finish) share one listening thread; a worker's claim loop
        # waits for work on its own connection and claims on it (ADR 0031).
        self._listener = Listener(url)
        # One per store: a worker has one claim loop. Whoever holds _cc_use uses it; a
        # second thread claiming or waiting meanwhile takes the pool and the Listener.
        self._cc = ClaimConnection(url)
        self._cc_use = threading.Lock()
        self._pinned = threading.local()  # .conn: the connection this thread's claim uses
        self._sessions: dict[str, WorkerSession] = {}  # liveness, per worker (ADR 0018)
        self._sessions_lock = threading.Lock()
        self._claim_mark = threading.local()
        self._limited: dict[str, int] = {}
        self._limited_expires = 0.0
        self._plan_trivial_until = 0.0  # monotonic; see _PLAN_TTL
        # Concurrent enqueues share one statement and commit (ADR 0019). One lane: a
        # second batch in flight halved the batches' size for no more jobs per second on
        # 2 cores, and each batch costs the producer process ~50 µs (ADR 0027).
        self._committer = GroupCommitter("postgres", self._commit_group, lanes=1)

    # -- plumbing ------------------------------------------------------------

    @contextlib.contextmanager
    def _raw_cursor(self, *, tx: bool) -> Iterator[Cursor]:
        pinned = getattr(self._pinned, "conn", None)
        if pinned is not None:  # a claim on its thread's claim connection (ADR 0031)
            with pinned.transaction() if tx else contextlib.nullcontext(), \
                    pinned.cursor(row_factory=dict_row) as cur:
                yield cur
            return
        try:
            with borrow(self._pool, self._timeout) as conn:
                if tx:
                    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                        yield cur
                else:
                    with conn.cursor(row_factory=dict_row) as cur:
                        yield cur
        except NotSent as e:
            raise StoreUnavailable(f"PostgreSQL unavailable: {e}") from e

    @contextlib.contextmanager
    def _cursor(self, *, tx: bool) -> Iterator[Cursor]:
        # Callers never see the driver: a refused statement is a Treadle error too.
        with translated(), self._raw_cursor(tx=tx) as cur:
            yield cur

    def _retrying(
        self, what: str, op: Callable[[Cursor], T], *, tx: bool, idempotent: bool
    ) -> T:
        with translated():
            return self._reconnect.on_pool(self._pool, what, op, tx=tx, idempotent=idempotent)

    def _read(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A read for callers (producers, the API, waiters): rides out a lost connection."""

        def op(cur: Cursor) -> list[dict[str, Any]]:
            cur.execute(Q[name], params)
            return cur.fetchall()

        return self._retrying(name, op, tx=False, idempotent=True)

    def _read_once(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A read on a worker's hot path: fails fast, the worker loop retries and logs."""
        with self._cursor(tx=False) as cur:
            cur.execute(Q[name], params)
            return cur.fetchall()

    def execute(
        self, sql: LiteralString, params: Mapping[str, Any], *, write: bool
    ) -> list[Mapping[str, Any]]:
        """Run one statement for an extension (see ``store/extension.py``).

        Reads (``write=False``) ride out a lost connection like the store's own."""

        def op(cur: Cursor) -> list[Mapping[str, Any]]:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

        if write:
            with self._cursor(tx=True) as cur:
                return op(cur)
        return self._retrying("extension read", op, tx=False, idempotent=True)

    def _enc_ts(self, value: datetime) -> datetime:
        return value

    def _enc_list(self, values: Sequence[str]) -> list[str]:
        return list(values)

    def close(self) -> None:
        self._stop_sessions()
        self._committer.close()
        self._listener.stop()
        self._cc.close()
        self._pool.close()

    # -- schema --------------------------------------------------------------

    def _migrations(self) -> MigrationRunner:
        return MigrationRunner("treadle.store.postgres.migrations", self._run_script, self._applied)

    def _run_script(
        self, sql: LiteralString, version: int, name: str, plugin: str | None = None
    ) -> None:
        with self._cursor(tx=True) as cur:
            cur.execute(Q["migration_lock"])
            cur.execute(Q["create_migrations_table"])
            if plugin is None:
                cur.execute(Q["applied_migrations"])
            else:
                cur.execute(Q["plugin_applied_migrations"], {"plugin": plugin})
            if version in {r["version"] for r in cur.fetchall()}:
                return  # another process applied it while we waited for the lock
            cur.execute(sql)
            if plugin is None:
                cur.execute(Q["record_migration"], {"version": version, "name": name})
            else:
                cur.execute(Q["record_plugin_migration"],
                            {"plugin": plugin, "version": version, "name": name})

    def _applied(self) -> list[int]:
        with self._cursor(tx=True) as cur:
            cur.execute(Q["migration_lock"])
            cur.execute(Q["create_migrations_table"])
            cur.execute(Q["applied_migrations"])
            return [r["version"] for r in cur.fetchall()]

    def migrate(self) -> list[int]:
        return self._migrations().migrate()

    def check_schema(self) -> None:
        self._migrations().check()

    def _plugin_migrations(self, plugin: str, sql_package: str) -> MigrationRunner:
        def run(sql: LiteralString, version: int, name: str) -> None:
            self._run_script(sql, version, name, plugin)

        def applied() -> list[int]:
            rows = self._read("plugin_applied_migrations", {"plugin": plugin})
            return [r["version"] for r in rows]

        package = plugin_migrations_package(sql_package, "postgres")
        return MigrationRunner(package, run, applied, what=f"schema of plug-in {plugin!r}")

    def migrate_plugin(self, plugin: str, sql_package: str) -> list[int]:
        return self._plugin_migrations(plugin, sql_package).migrate()

    def check_plugin_schema(self, plugin: str, sql_package: str) -> None:
        self._plugin_migrations(plugin, sql_package).check()

    # -- producers -----------------------------------------------------------

    def enqueue(self, jobs: Sequence[NewJob], *, guard: Guard | None = None) -> list[Enqueued]:
        """Insert ``jobs`` (all or none), coalesced with concurrent callers (ADR 0019)."""
        if not jobs:
            return []
        return self._committer.enqueue(jobs, guard)

    def submit(self, jobs: Sequence[NewJob], *,
               guard: Guard | None = None) -> Future[list[Enqueued]]:
        """Non-blocking :meth:`enqueue`: the future resolves once the jobs are durable."""
        return self._committer.submit(jobs, guard)

    def _commit_group(self, batch: Sequence[Submission]) -> list[Result]:
        """A batch of submissions in one statement (or one transaction with guards).

        When the server refuses the combined statement (one submission's bad parent, say),
        nothing of it was written; each submission is then sent on its own, so each
        caller gets its own answer and only the bad one fails."""
        try:
            return self._commit_once(batch)
        except (StoreError, ValueOutOfRange):  # refused, not lost (StoreUnavailable)
            if len(batch) == 1:
                raise
        out: list[Result] = []
        for sub in batch:
            try:
                out.append(self._commit_once([sub])[0])
            except Exception as exc:
                out.append(exc)
        return out

    def _commit_once(self, batch: Sequence[Submission]) -> list[Result]:
        jobs = [nj for sub in batch for nj in sub.jobs]
        keyed = sum(nj.idempotency_key is not None for nj in jobs)
        # Read the clock before borrowing: its periodic re-sync borrows a connection of its
        # own, and taken inside the borrow, producers holding every pool connection waited
        # on each other until the pool timed out (16 threads on 4 connections stalled).
        now = self.clock.now()
        # Without idempotency keys or guards the insert (with its events and wake-up) is
        # one atomic statement: one round trip. Keys need a second look in the same
        # transaction. Only a batch whose every job has a key may be re-sent after a lost
        # connection: the keys turn a repeat into a lookup (ADR 0007).
        if not any(sub.guard is not None for sub in batch):
            # Through libpq, not a cursor, in autocommit (ADR 0032).
            with translated():
                flat = self._reconnect.on_connection(
                    self._pool, "enqueue", lambda conn: self._insert_plain(conn, jobs, now),
                    idempotent=keyed == len(jobs))
            return _split(batch, flat, [None] * len(batch))
        return self._retrying("enqueue", lambda cur: self._guarded(cur, batch, now),
                              tx=True, idempotent=keyed == len(jobs))

    def _guarded(self, cur: Cursor, batch: Sequence[Submission], now: datetime) -> list[Result]:
        """Each guard under its own savepoint (a refusal rolls back only its own
        statements), then one insert for the submissions that passed."""

        def execute(sql: LiteralString, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

        tx = StoreTransaction(execute, lambda jobs: self._enqueue_in(cur, jobs), self.codec)
        refused: list[Exception | None] = [None] * len(batch)
        for i, sub in enumerate(batch):
            if sub.guard is None:
                continue
            cur.execute("SAVEPOINT treadle_submission")
            try:
                sub.guard(tx)
            except Exception as exc:
                if is_connection_lost(exc):
                    raise  # the whole transaction is gone: the retry layer decides
                cur.execute("ROLLBACK TO SAVEPOINT treadle_submission")
                refused[i] = translate(exc)
            cur.execute("RELEASE SAVEPOINT treadle_submission")
        live = [sub for sub, r in zip(batch, refused, strict=True) if r is None]
        flat = self._enqueue_in(cur, [nj for sub in live for nj in sub.jobs], now)
        return _split(batch, flat, refused)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """One transaction for a plug-in's statements and new jobs (notifications of new
        work are delivered by PostgreSQL at commit)."""

        def execute(sql: LiteralString, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []

        with self._cursor(tx=True) as cur:
            yield StoreTransaction(execute, lambda jobs: self._enqueue_in(cur, jobs),
                                   self.codec)

    def _enqueue_in(
        self, cur: Cursor, jobs: Sequence[NewJob], now: datetime | None = None
    ) -> list[Enqueued]:
        if not jobs:
            return []
        now = now or self.clock.now()
        cur.execute(Q["insert_jobs"], {"jobs": job_document(jobs), "now": now})
        inserted = cur.fetchall()
        existing: dict[tuple[str, str], Job] = {}
        keyed = [nj for nj in jobs if nj.idempotency_key is not None]
        if keyed:
            cur.execute(
                Q["jobs_by_idempotency_keys"],
                {"tenant": [nj.tenant for nj in keyed],
                 "idempotency_key": [nj.idempotency_key for nj in keyed]},
            )
            for r in cur.fetchall():
                job = job_from_row(r, self.codec)
                existing[(job.tenant, job.idempotency_key or "")] = job
        return match_inserted(jobs, inserted, existing, now, cur.connection.info.timezone)

    def _insert_plain(self, conn: psycopg.Connection[Any], jobs: Sequence[NewJob],
                      now: datetime) -> list[Enqueued]:
        """Jobs without guards, in autocommit: one statement, and a second only for the
        idempotency keys it did not insert (or that the batch repeats), whose jobs are
        read. No transaction is needed around the two: a key the insert skipped belongs
        to a committed row (``ON CONFLICT`` waits for a concurrent inserter's outcome),
        and at read committed the transaction's second statement saw no more than this
        one does. Keyed jobs paid BEGIN, insert, read and COMMIT before: four round trips
        for one (ADR 0032)."""
        inserted = insert_plain(conn, _INSERT_JOBS_LIBPQ, job_document(jobs), now)
        existing: dict[tuple[str, str], Job] = {}
        keyed = [(nj.tenant, nj.idempotency_key) for nj in jobs
                 if nj.idempotency_key is not None]
        if keyed:
            keys = Counter(keyed)
            got = {(r["tenant"], r["idempotency_key"]) for r in inserted}
            wanted = [k for k, n in keys.items() if n > 1 or k not in got]
            if wanted:
                with conn.cursor(row_factory=dict_row) as cur:
                    cur.execute(Q["jobs_by_idempotency_keys"],
                                {"tenant": [t for t, _ in wanted],
                                 "idempotency_key": [k for _, k in wanted]})
                    for r in cur.fetchall():
                        job = job_from_row(r, self.codec)
                        existing[(job.tenant, job.idempotency_key or "")] = job
        return match_inserted(jobs, inserted, existing, now, conn.info.timezone)

    # -- workers -------------------------------------------------------------

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
            return self._claim(queues=queues, worker=worker, limit=limit,
                               lease_seconds=lease_seconds, kinds=kinds, suspect=suspect)
        # The claim runs on the connection that listens for work and woke the wait: its
        # backend has just run, and the wake-up needed no second thread (ADR 0031).
        try:
            with translated():
                conn = self._pinned.conn = cc.connection()
            self._claim_mark.seen = ("cc", cc.mark())
            try:
                return self._claim(queues=queues, worker=worker, limit=limit,
                                   lease_seconds=lease_seconds, kinds=kinds, suspect=suspect)
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

    def suspect_waiting(
        self, *, queues: Sequence[str] | None, kinds: Sequence[str] | None = None
    ) -> bool:
        """As ``QuarantineOps.suspect_waiting``, but answered by the plan this thread's
        claim has just read for the same queues and kinds, if it read one within
        ``_SUSPECT_ANSWER_TTL``: the claim loop looks right after an empty claim, and a
        reap that makes a suspect later notifies (the next wait ends, the next claim plans
        again)."""
        known = getattr(self._claim_mark, "suspect", None)
        self._claim_mark.suspect = None
        if known is not None:
            q, k, at, waiting = known
            if (q == (None if queues is None else list(queues))
                    and k == (None if kinds is None else list(kinds))
                    and self.clock.monotonic() - at < _SUSPECT_ANSWER_TTL):
                return bool(waiting)
        return super().suspect_waiting(queues=queues, kinds=kinds)

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

    def _server_time(self) -> datetime:
        with self._cursor(tx=False) as cur:
            cur.execute(Q["server_time"], {})
            row = cur.fetchone()
        assert row is not None
        now: datetime = row["now"]
        return now

    def _write(self, name: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        with self._cursor(tx=True) as cur:
            cur.execute(Q[name], params)
            return cur.fetchall() if cur.description else []

    def _absorb_notifications(self) -> None:
        """Read the claim connection's notifications while its claim loop neither waits
        nor claims (every slot busy with long jobs): from the heartbeat, which such a
        worker sends every lease interval / renewals (10 s by default). A claim loop that
        claims as slots free reads them with each claim."""
        if self._cc_use.acquire(blocking=False):
            try:
                self._cc.absorb()
            finally:
                self._cc_use.release()

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

    def interrupt(self) -> None:
        # Sticky on both: the wait that comes next, on either, ends at once.
        self._listener.interrupt()
        self._cc.interrupt()

    def wait_for_work(self, timeout: float) -> bool:
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
            if cc.connected and time.monotonic() >= self._limited_expires - _LIMITED_TTL / 2:
                # The list of limited queues would run out soon: read it now, idle, so the
                # claim this wait leads to does not read it first (ADR 0031).
                with translated():
                    self._pinned.conn = cc.connection()
                try:
                    self._limited_expires = 0.0
                    self._limited_queues()
                finally:
                    self._pinned.conn = None
            if cc.wait(seen, timeout):
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

    # -- control -------------------------------------------------------------

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


def _split(
    batch: Sequence[Submission], flat: list[Enqueued], refused: list[Exception | None]
) -> list[Result]:
    """Hand each submission its slice of ``flat`` (the jobs of those not refused, in
    order), or its refusal."""
    out: list[Result] = []
    at = 0
    for sub, refusal in zip(batch, refused, strict=True):
        if refusal is not None:
            out.append(refusal)
            continue
        out.append(flat[at:at + len(sub.jobs)])
        at += len(sub.jobs)
    return out
