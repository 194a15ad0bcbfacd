"""The embedded SQLite store: WAL, ``synchronous=FULL``, claims under ``BEGIN IMMEDIATE``.

One connection per thread. Several worker processes on one machine are safe:
SQLite serialises writers with its file lock and every write transaction
starts ``IMMEDIATE`` so two claimers can never both read the same queued row.
Idle workers notice new work by watching ``PRAGMA data_version`` (it changes
when another connection commits): ``store/sqlite/waiting.py``, ADR 0003.

This module holds the connections, the guarded writes of a job's outcome, the reaper
and the control writes; its other parts are mixins beside it: the schema
(``schema.py``), the producer path (``producing.py``), the claim path (``claiming.py``),
worker liveness (``workers.py``) and waiting (``waiting.py``).
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, LiteralString, TypeVar

from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.errors import (
    ConfigurationError,
    ErrorInfo,
    StoreUnavailable,
)
from treadle.core.job import Job, QueueInfo
from treadle.core.lease import HeartbeatResult, ReapResult
from treadle.core.outcome import Outcome
from treadle.store import usage
from treadle.store.common import SqlReads
from treadle.store.crashes import reap_decision, worker_died
from treadle.store.flow import FlowOps
from treadle.store.groupcommit import GroupCommitter
from treadle.store.outcomes import (
    finish_params,
    lease_lost_detail,
    storable_lines,
    storable_outcome,
)
from treadle.store.quarantine import QuarantineOps
from treadle.store.queries import load_queries
from treadle.store.rows import (
    SQLITE_CODEC,
    dumps,
    job_from_row,
)
from treadle.store.rows import dt_to_epoch as _ts
from treadle.store.sqlite.claiming import ClaimOps
from treadle.store.sqlite.errors import translated
from treadle.store.sqlite.producing import ProduceOps
from treadle.store.sqlite.schema import SchemaOps
from treadle.store.sqlite.waiting import WaitOps
from treadle.store.sqlite.workers import LivenessOps

Q = load_queries("treadle.store.sqlite")
USAGE_Q = load_queries("treadle.store.sqlite", "usage_queries.sql")
_BUSY_SECONDS = 30.0
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
T = TypeVar("T")


class SQLiteStore(SqlReads, FlowOps, QuarantineOps, SchemaOps, ProduceOps, ClaimOps,
                  LivenessOps, WaitOps):
    """See module docstring. ``url`` is ``sqlite:///relative.db`` or ``sqlite:////abs.db``."""

    def __init__(self, url: str, *, clock: Clock = SYSTEM_CLOCK, durable: bool = True) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self.clock = clock
        self._durable = durable
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._wake = threading.Condition()
        self._interrupted = False
        self._seq = 0  # bumped by every in-process commit that may interest a waiter
        self._busy_until = 0.0  # monotonic: poll fast until then (_POLL_BUSY_SECONDS)
        # Concurrent enqueues share one BEGIN IMMEDIATE ... COMMIT (one fsync; ADR 0019).
        self._committer = GroupCommitter("sqlite", self._commit_group)
        if self.path != ":memory:":
            parent = Path(self.path).parent
            if not parent.is_dir():
                raise ConfigurationError(f"directory of SQLite database does not exist: {parent}")

    # -- connections ---------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                # timeout=0: waiting for the lock is done by _busy_retry, not SQLite.
                conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=0
                )
                conn.row_factory = sqlite3.Row
                self._busy_retry(lambda: conn.execute("PRAGMA journal_mode=WAL"))
                conn.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'NORMAL'}")
                conn.execute("PRAGMA foreign_keys=ON")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    @contextlib.contextmanager
    def _tx(self, *, flush: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction; IMMEDIATE takes the write lock up front.

        ``flush=False`` commits without the fsync (``synchronous=NORMAL``, set by
        ``_sync_for`` and left until a transaction that flushes; ADR 0030): only for a
        claim, which a power loss may undo without harm, since it takes this host's
        workers down with it (the job is queued again)."""
        conn = self._conn()
        with translated():  # the driver's errors, from the body too, become Treadle's
            self._sync_for(conn, relaxed=not flush)
            self._busy_retry(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # SQLite rolls back by itself on some errors (I/O, a full disk); a
                # COMMIT it refused (a deferred foreign key) leaves it open.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _sync_for(self, conn: sqlite3.Connection, *, relaxed: bool) -> None:
        """Set this thread's connection to commit the coming write transaction with
        (``relaxed=False``) or without the fsync; every write transaction calls this
        first, so none inherits a claim's setting. The setting stays between them: a
        claiming thread's claims follow one another with no statement for it (two of
        a one-job claim's eight were the switch there and back)."""
        if not self._durable or (getattr(self._local, "relaxed", None) is conn) == relaxed:
            return
        conn.execute(f"PRAGMA synchronous={'NORMAL' if relaxed else 'FULL'}")
        self._local.relaxed = conn if relaxed else None

    codec = SQLITE_CODEC
    backend = "sqlite"

    def execute(
        self, sql: LiteralString, params: Mapping[str, Any], *, write: bool
    ) -> list[Mapping[str, Any]]:
        """Run one statement for an extension (see ``store/extension.py``).

        Reads use this thread's connection outside any write transaction, so a lookup
        (an API key per request) never takes SQLite's write lock."""
        if write:
            with self._tx() as conn:
                return list(conn.execute(sql, params).fetchall())
        conn = self._conn()
        with translated():
            return list(self._busy_retry(lambda: conn.execute(sql, params).fetchall()))

    def _write(self, name: str, params: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
        with self._tx() as conn:
            return list(conn.execute(Q[name], params).fetchall())

    def _read(self, name: str, params: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
        conn = self._conn()
        with translated():
            rows: list[sqlite3.Row] = self._busy_retry(
                lambda: conn.execute(Q[name], params).fetchall()
            )
        return rows  # type: ignore[return-value]  # sqlite3.Row is a read-only mapping

    @staticmethod
    def _busy_retry(op: Callable[[], T]) -> T:
        """Run ``op``, retrying while the database is locked by another connection.

        SQLite's own busy handler sleeps in growing steps (up to 100 ms) and so wakes
        long after the lock is free; polling every 0.2-2 ms (with jitter) keeps lock
        hand-offs between worker processes fast. Gives up after ``_BUSY_SECONDS``."""
        delay, deadline = 0.0005, 0.0
        while True:
            try:
                return op()
            except sqlite3.OperationalError as exc:
                # sqlite_errorcode is the *extended* code (e.g. SQLITE_BUSY_RECOVERY);
                # its low byte is the primary one.
                if getattr(exc, "sqlite_errorcode", 0) & 0xFF not in _BUSY_CODES:
                    raise
                now = time.monotonic()
                if not deadline:
                    deadline = now + _BUSY_SECONDS
                elif now >= deadline:
                    raise StoreUnavailable(
                        f"SQLite database stayed locked for {_BUSY_SECONDS:.0f}s: {exc}"
                    ) from exc
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 0.008)

    def _enc_ts(self, value: datetime) -> float:
        return value.timestamp()

    def _enc_list(self, values: Sequence[str]) -> str:
        return dumps(list(values))

    def close(self) -> None:
        self._committer.close()
        self.interrupt()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._conns.clear()
        self._local = threading.local()

    # -- workers (claims: store/sqlite/claiming.py) ----------------------------

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

    # -- control -------------------------------------------------------------

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


    # -- helpers ---------------------------------------------------------------

    def _callback(self, conn: sqlite3.Connection, job_id: int, now: datetime) -> None:
        row = conn.execute(Q["insert_callback_job"], {"id": job_id, "now": _ts(now)}).fetchone()
        if row is not None:
            self._event(conn, row["id"], None, "queued", 0, None, "enqueued", now)

    @staticmethod
    def _event(
        conn: sqlite3.Connection,
        job_id: int,
        from_status: str | None,
        to_status: str,
        attempt: int,
        worker: str | None,
        reason: str,
        at: datetime,
        detail: str | None = None,
    ) -> None:
        conn.execute(
            Q["insert_event"],
            {
                "job_id": job_id, "from_status": from_status, "to_status": to_status,
                "attempt": attempt, "worker": worker, "reason": reason, "at": _ts(at),
                "detail": detail,
            },
        )


def sqlite_path(url: str) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ConfigurationError(f"not a SQLite URL (expected sqlite:///path): {url!r}")
    path = url[len(prefix):]
    if not path:
        raise ConfigurationError("SQLite URL has no path: use sqlite:///treadle.db")
    return path
