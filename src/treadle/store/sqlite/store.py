"""The embedded SQLite store: WAL, ``synchronous=FULL``, claims under ``BEGIN IMMEDIATE``.

One connection per thread. Several worker processes on one machine are safe:
SQLite serialises writers with its file lock and every write transaction
starts ``IMMEDIATE`` so two claimers can never both read the same queued row.
Idle workers notice new work by watching ``PRAGMA data_version`` (it changes
when another connection commits): ``store/sqlite/waiting.py``, ADR 0003.

This module holds the connections; its other parts are mixins beside it: the rows every
guarded write adds, a job's event and a finished job's callback (``events.py``), the schema
(``schema.py``), the producer path (``producing.py``), the claim path (``claiming.py``),
the writes under a lease: heartbeat, outcomes, the reaper (``leases.py``), the
operator's writes: cancel, retry, quarantine, queue settings (``control.py``), worker
liveness (``workers.py``) and waiting (``waiting.py``).
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, LiteralString, TypeVar

from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.errors import (
    ConfigurationError,
    StoreUnavailable,
)
from treadle.store.common import SqlReads
from treadle.store.flow import FlowOps
from treadle.store.groupcommit import GroupCommitter
from treadle.store.quarantine import QuarantineOps
from treadle.store.queries import load_queries
from treadle.store.rows import (
    SQLITE_CODEC,
    dumps,
)
from treadle.store.sqlite.claiming import ClaimOps
from treadle.store.sqlite.control import ControlOps
from treadle.store.sqlite.errors import translated
from treadle.store.sqlite.leases import LeaseOps
from treadle.store.sqlite.producing import ProduceOps
from treadle.store.sqlite.schema import SchemaOps
from treadle.store.sqlite.waiting import WaitOps
from treadle.store.sqlite.workers import LivenessOps

Q = load_queries("treadle.store.sqlite")
_BUSY_SECONDS = 30.0
_BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
T = TypeVar("T")


# ControlOps comes before QuarantineOps: it supplies the ``_leave_quarantine`` that
# QuarantineOps only declares.
class SQLiteStore(SqlReads, FlowOps, LeaseOps, ControlOps, QuarantineOps, SchemaOps,
                  ProduceOps, ClaimOps, LivenessOps, WaitOps):
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


def sqlite_path(url: str) -> str:
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ConfigurationError(f"not a SQLite URL (expected sqlite:///path): {url!r}")
    path = url[len(prefix):]
    if not path:
        raise ConfigurationError("SQLite URL has no path: use sqlite:///treadle.db")
    return path
