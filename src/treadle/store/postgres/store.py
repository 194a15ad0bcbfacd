"""The PostgreSQL store: ``FOR UPDATE SKIP LOCKED`` claims, ``LISTEN/NOTIFY`` wake-ups.

Every batch operation (enqueue many, claim many, complete many, reap) is one
statement built from arrays with ``unnest``, so its cost is one round trip
whatever the batch size. ``synchronous_commit`` is left as the server has it, but for
unlimited claims, which commit without waiting for the flush (ADR 0030).

This module holds the plumbing (pool, cursors, retries), the guarded writes of workers
and maintenance (heartbeat, complete, reap, cancel, retry), so every guarded write reads
next to the others. The producers' path is ``producing.py``, the claims and the waits are
``claiming.py``, worker liveness is ``workers.py``: mixins of the one class.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, LiteralString, TypeVar

import psycopg
import psycopg_pool
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.errors import ErrorInfo, StoreUnavailable
from treadle.core.job import Job, QueueInfo
from treadle.core.lease import HeartbeatResult, ReapResult
from treadle.core.outcome import Outcome
from treadle.logs import route_stdlib
from treadle.store import usage
from treadle.store.common import SqlReads
from treadle.store.crashes import reap_decision, worker_died
from treadle.store.flow import FlowOps
from treadle.store.groupcommit import GroupCommitter
from treadle.store.migrations import MigrationRunner, plugin_migrations_package
from treadle.store.outcomes import (
    finish_params,
    lease_lost_detail,
    storable_lines,
    storable_outcome,
)
from treadle.store.postgres.claimconn import ClaimConnection
from treadle.store.postgres.claiming import ClaimOps
from treadle.store.postgres.connect import check_url, connect_kwargs
from treadle.store.postgres.dbclock import DatabaseClock
from treadle.store.postgres.errors import translated
from treadle.store.postgres.handoff import HandoffOps, _Parked
from treadle.store.postgres.listener import Listener
from treadle.store.postgres.producing import ProduceOps
from treadle.store.postgres.retry import NotSent, Reconnect, borrow
from treadle.store.postgres.session import WorkerSession
from treadle.store.postgres.workers import LivenessOps
from treadle.store.quarantine import QuarantineOps
from treadle.store.queries import load_queries
from treadle.store.rows import POSTGRES_CODEC, job_from_row

T = TypeVar("T")
Cursor = psycopg.Cursor[dict[str, Any]]
Q = load_queries("treadle.store.postgres")
# ids per treadle_done payload: payloads are capped at 8000 bytes, ids are <= 20 chars.
_NOTIFY_CHUNK = 300
# How long the suspect look's answer read with a claim's plan stands in for the look itself.
_SUSPECT_ANSWER_TTL = 0.5


def _ts(value: datetime) -> datetime:
    return value


def _js(value: Any) -> Jsonb:
    return Jsonb(value)


class PostgresStore(ProduceOps, ClaimOps, HandoffOps, SqlReads, FlowOps, QuarantineOps,
                    LivenessOps):
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
        # Hand-offs (ADR 0034) reach this store's parked worker on a channel of its own.
        self._handoff_channel = f"treadle_handoff_{secrets.token_hex(8)}"
        self._parked: dict[str, _Parked] = {}
        self._no_parked_until = 0.0
        self._handed: dict[str, list[Job]] = {}
        self._cc = ClaimConnection(url, self._handoff_channel)
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

    # -- workers -------------------------------------------------------------

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
