"""A worker's liveness session on PostgreSQL (ADR 0018).

Each worker holds, on a dedicated connection, a session advisory lock under a random
64-bit key recorded with its row in ``treadle_workers``. PostgreSQL releases the lock
when the session ends (the process died, the connection dropped), so a running job
whose owner's lock is free belongs to a dead worker: the reaper re-queues it at once
instead of waiting for its lease.

The same connection competes for a second, shared lock: the one holder of it is the
*liveness leader* and runs the dead-worker pass for everyone (one query a second per
database, not per worker). A worker tries for it (``pg_try_advisory_lock``) when it
wants a pass, that is while some job runs (ADR 0025), and never waits for it in a
blocking query: a query blocked in ``pg_advisory_lock`` holds a snapshot, and with it
the database's xmin horizon, for as long as it waits — no dead row of any table could
be vacuumed, nor a dead index entry skipped, so with two workers every claim and probe
over the jobs' partial indexes slowed down with each job done (issue 13,
``bench/results/backlog.md``). When the leader dies the next try, within a second,
takes over.
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg.rows import tuple_row

from treadle.logs import get_logger
from treadle.store.postgres.connect import connect_kwargs

log = get_logger("treadle.store")
T = TypeVar("T")

# The key of the leader lock: fixed, in the bigint key space ("treadle" in ASCII).
LEADER_KEY = 0x74726561646C65
# How often a backend blocked in the leader wait checks that its client is still there.
CHECK_INTERVAL = "250ms"
_BACKOFF_MAX = 2.0


def _random_key() -> int:
    # Positive 62-bit keys: far from the small hashtext() keys of transaction locks.
    return random.getrandbits(62) | (1 << 61)


def hold_random_lock(conn: psycopg.Connection[Any], key: int | None = None) -> int:
    """Take a session advisory lock on ``conn`` under ``key`` (or a random one) that no
    other session holds, drawing again on a collision; returns the key held. Never
    waits: a blocking ``pg_advisory_lock`` on a key held elsewhere would never return."""
    key = _random_key() if key is None else key
    while not _fetch_bool(conn, "SELECT pg_try_advisory_lock(%s)", key):
        key = _random_key()  # held by another session: a collision, draw again
    return key


class WorkerSession:
    """The liveness connection of one worker; a supervised thread of its own making."""

    def __init__(self, url: str, worker: str,
                 record: Callable[[psycopg.Connection[Any], int], None]) -> None:
        self._url = url
        self.worker = worker
        self._record = record
        self.key = _random_key()
        self.registered = threading.Event()
        self._stop = threading.Event()
        self._leader = False
        self._ready = False  # this connection holds the worker's lock and recorded it
        self._conn: psycopg.Connection[Any] | None = None
        self._use = threading.Lock()  # the leader's pass and the thread share the connection
        self._broken = threading.Event()
        self._thread = threading.Thread(target=self._run, name="treadle-pg-liveness",
                                        daemon=True)

    @property
    def leader(self) -> bool:
        return self._leader

    def start(self, timeout: float) -> bool:
        """Start the session; True once the worker's lock is held and its row recorded."""
        self._thread.start()
        return self.registered.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        for _ in range(50):  # the thread may be between its stop check and the wait
            conn = self._conn
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.cancel()  # ends a blocked leader wait
            self._thread.join(0.2)
            if not self._thread.is_alive():
                return

    def as_leader(self, op: Callable[[psycopg.Connection[Any]], T]) -> T | None:
        """Run ``op`` on the session's connection if this session is (or now becomes,
        by a try for the leader lock) the leader."""
        with self._use:
            conn = self._conn
            if conn is None or not self._ready:
                return None
            try:
                if not self._leader:
                    if not _fetch_bool(conn, "SELECT pg_try_advisory_lock(%s)", LEADER_KEY):
                        return None  # another worker leads
                    self._leader = True
                    log.info("worker is the liveness leader", worker=self.worker)
                return op(conn)
            except psycopg.OperationalError:
                self._broken.set()  # the thread reconnects (and competes again)
                self._leader = False
                raise

    def _run(self) -> None:
        # Never ends silently: every failure is logged and the session is re-made, with
        # the same key first so a short outage does not look like a death.
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._session()
                backoff = 0.1
            except psycopg.Error as exc:
                if self._stop.is_set():
                    break
                log.warning("worker liveness session lost; reconnecting", worker=self.worker,
                            error=str(exc).strip())
            except Exception as exc:
                log.error("worker liveness session failed; reconnecting", worker=self.worker,
                          error=repr(exc), exc_info=exc)
            finally:
                with self._use:
                    self._leader = self._ready = False
                    conn, self._conn = self._conn, None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.close()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)

    def _session(self) -> None:
        conn = psycopg.connect(self._url, autocommit=True, **connect_kwargs())
        self._conn = conn
        self._broken.clear()
        conn.execute("SELECT set_config('client_connection_check_interval', %s, false)",
                     (CHECK_INTERVAL,))
        self.key = hold_random_lock(conn, self.key)
        self._record(conn, self.key)
        with self._use:
            self._ready = True
        self.registered.set()
        # The leadership is tried for by the passes (as_leader), not waited for here.
        while not self._stop.is_set() and not self._broken.is_set():
            self._stop.wait(0.5)


def _fetch_bool(conn: psycopg.Connection[Any], sql: Any, key: int) -> bool:
    with conn.cursor(row_factory=tuple_row) as cur:  # whatever the connection's rows are
        row = cur.execute(sql, (key,)).fetchone()
    return bool(row and row[0])


__all__ = ["LEADER_KEY", "WorkerSession"]
