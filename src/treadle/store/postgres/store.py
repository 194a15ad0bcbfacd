"""The PostgreSQL store: ``FOR UPDATE SKIP LOCKED`` claims, ``LISTEN/NOTIFY`` wake-ups.

Every batch operation (enqueue many, claim many, complete many, reap) is one
statement built from arrays with ``unnest``, so its cost is one round trip
whatever the batch size. ``synchronous_commit`` is left as the server has it, but for
unlimited claims, which commit without waiting for the flush (ADR 0030).

This module holds the plumbing (pool, cursors, retries) and the schema's migrations; the
rest are mixins of the one class beside it. The producers' path is ``producing.py``, the
claims and the waits are ``claiming.py``, hand-offs to parked workers ``handoff.py``, the
writes under a lease (heartbeat, complete, reap) ``leases.py``, the operator's writes
(cancel, retry, quarantine, queue settings) ``control.py``, worker liveness ``workers.py``.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, LiteralString, TypeVar

import psycopg
import psycopg_pool
from psycopg.rows import dict_row

from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.errors import StoreUnavailable
from treadle.core.job import Job
from treadle.logs import route_stdlib
from treadle.store.common import SqlReads
from treadle.store.flow import FlowOps
from treadle.store.groupcommit import GroupCommitter
from treadle.store.migrations import MigrationRunner, plugin_migrations_package
from treadle.store.postgres.claimconn import ClaimConnection
from treadle.store.postgres.claiming import ClaimOps
from treadle.store.postgres.connect import check_url, connect_kwargs
from treadle.store.postgres.control import ControlOps
from treadle.store.postgres.dbclock import DatabaseClock
from treadle.store.postgres.errors import translated
from treadle.store.postgres.handoff import HandoffOps, _Parked
from treadle.store.postgres.leases import LeaseOps
from treadle.store.postgres.listener import Listener
from treadle.store.postgres.producing import ProduceOps
from treadle.store.postgres.retry import NotSent, Reconnect, borrow
from treadle.store.postgres.session import WorkerSession
from treadle.store.postgres.workers import LivenessOps
from treadle.store.quarantine import QuarantineOps
from treadle.store.queries import load_queries
from treadle.store.rows import POSTGRES_CODEC

T = TypeVar("T")
Cursor = psycopg.Cursor[dict[str, Any]]
Q = load_queries("treadle.store.postgres")
# How long the suspect look's answer read with a claim's plan stands in for the look itself.
_SUSPECT_ANSWER_TTL = 0.5


# ControlOps comes before QuarantineOps: it supplies the ``_leave_quarantine`` that
# QuarantineOps only declares.
class PostgresStore(ProduceOps, ClaimOps, HandoffOps, LeaseOps, ControlOps, SqlReads, FlowOps,
                    QuarantineOps, LivenessOps):
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

    # -- workers (their writes under a lease: leases.py) ---------------------

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
