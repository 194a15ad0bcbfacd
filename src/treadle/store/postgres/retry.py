"""Riding out a lost PostgreSQL connection (see docs/adr/0007-reconnecting-to-postgresql.md).

Two pieces, both independent of the store so they can be tested without a server:

- :func:`borrow` checks every connection it takes from the pool with :func:`check_idle`,
  which costs no round trip: an idle connection that has something to read has been closed by the
  server (a restart sends a FATAL message, then EOF), so it is discarded before any
  statement is sent on it.
- :class:`Reconnect` runs an operation again, on a fresh connection, when it fails
  because the connection was lost -- but only when running it twice is harmless
  (``idempotent``) or when the failure came before anything was sent (:class:`NotSent`).
  It backs off with jitter and gives up with :class:`StoreUnavailable` at a deadline.
"""

from __future__ import annotations

import contextlib
import random
import select
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from psycopg import pq
from psycopg.rows import dict_row

from treadle.core.errors import StoreUnavailable
from treadle.logs import get_logger

T = TypeVar("T")
Cursor = psycopg.Cursor[dict[str, Any]]

# SQLSTATEs that mean "this connection is gone", not "this statement is wrong":
# class 08 (connection exception) and the server shutting a backend down.
_GONE_CLASSES = ("08",)
_GONE_STATES = frozenset({"57P01", "57P02", "57P03"})  # admin/crash shutdown, cannot connect now
_CHECK_READS = 8  # reads an idle connection may need before it is known alive or dead


@dataclass(frozen=True)
class ReconnectPolicy:
    """How long and how often to retry an operation that lost its connection.

    ``deadline`` counts from the first attempt; each borrow of a connection waits at
    most for what is left of it, so the whole call is bounded by ``deadline`` plus one
    statement's run time.
    """

    deadline: float = 30.0
    first_delay: float = 0.05
    max_delay: float = 2.0

    def __post_init__(self) -> None:
        if self.deadline <= 0 or self.first_delay <= 0 or self.max_delay < self.first_delay:
            raise ValueError("need deadline > 0 and 0 < first_delay <= max_delay")


class NotSent(Exception):
    """No statement reached the server (no live connection could be borrowed)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def is_connection_lost(exc: BaseException) -> bool:
    """Did ``exc`` come from losing the connection (as opposed to a bad statement)?"""
    if isinstance(exc, NotSent | psycopg_pool.PoolTimeout):
        return True
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate
        if state is None:  # raised by the client: the socket closed, connecting failed
            return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)
        return state.startswith(_GONE_CLASSES) or state in _GONE_STATES
    return False


def check_idle(conn: psycopg.Connection[Any]) -> None:
    """Raise if a pooled, idle connection has been closed by the server.

    Pool connections never LISTEN, so an idle one has nothing to read unless the server
    said goodbye (or sent a harmless parameter change, which consuming input absorbs).
    A half-open connection (a network partition) passes; its statement then fails and
    the caller's retry, or the keepalives in ``connect.py``, take over.
    """
    if conn.closed:
        raise psycopg.OperationalError("connection is closed")
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    # A goodbye is a FATAL message then EOF; one read may return the message alone, so
    # keep reading while there is more. A live connection stops being readable at once.
    for _ in range(_CHECK_READS):
        if not poller.poll(0):
            return
        conn.pgconn.consume_input()  # raises OperationalError on EOF
        if conn.pgconn.status != pq.ConnStatus.OK:
            raise psycopg.OperationalError("connection closed by the server")
    raise psycopg.OperationalError("idle connection keeps receiving data; discarding it")


class Reconnect:
    """Runs store operations with a bounded, jittered retry on lost connections.

    ``monotonic``, ``sleep`` and ``jitter`` are injected so tests can drive the schedule
    without waiting (the store's own clock is often a frozen ManualClock in tests, which
    would never reach a deadline).
    """

    def __init__(
        self,
        policy: ReconnectPolicy | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy or ReconnectPolicy()
        self._monotonic = monotonic
        self._sleep = sleep
        self._jitter = jitter

    def run(self, what: str, attempt: Callable[[float], T], *, idempotent: bool) -> T:
        """Call ``attempt(budget)`` until it succeeds, fails for another reason, or time is up.

        ``budget`` is the time left before the deadline: the attempt should wait for a
        connection no longer than that. A lost connection after the statement was sent is
        retried only when ``idempotent``; otherwise the caller learns that the write may
        or may not have been applied.
        """
        start = self._monotonic()
        delay = self.policy.first_delay
        tries = 0
        while True:
            tries += 1
            budget = self.policy.deadline - (self._monotonic() - start)
            try:
                return attempt(max(budget, 0.001))
            except Exception as exc:
                if not is_connection_lost(exc):
                    raise
                cause = exc.cause if isinstance(exc, NotSent) else exc
                reason = " ".join(str(cause).split()) or type(cause).__name__
                if not idempotent and not isinstance(exc, NotSent):
                    raise StoreUnavailable(
                        f"PostgreSQL connection lost during {what}; it may or may not have "
                        f"been applied: {reason}",
                        detail={"operation": what, "maybe_applied": True},
                    ) from exc
                left = self.policy.deadline - (self._monotonic() - start)
                if left <= 0:
                    raise StoreUnavailable(
                        f"PostgreSQL unreachable for {self.policy.deadline:g}s "
                        f"({tries} attempts at {what}): {reason}",
                        detail={"operation": what, "attempts": tries},
                    ) from exc
                pause = min(delay * (0.5 + self._jitter()), left)
                # info, not warning: this is handled; the caller hears of it if it persists.
                get_logger("treadle.store").info(
                    "postgres connection lost; retrying", operation=what, attempt=tries,
                    retry_in=round(pause, 3), error=reason,
                )
                self._sleep(pause)
                delay = min(delay * 2, self.policy.max_delay)

    def on_pool(
        self,
        pool: psycopg_pool.ConnectionPool[Any],
        what: str,
        op: Callable[[Cursor], T],
        *,
        tx: bool,
        idempotent: bool,
    ) -> T:
        """:meth:`run` ``op`` on a cursor of a live connection borrowed from ``pool``."""

        def attempt(budget: float) -> T:
            with borrow(pool, budget) as conn, (
                conn.transaction() if tx else contextlib.nullcontext()
            ), conn.cursor(row_factory=dict_row) as cur:
                return op(cur)

        return self.run(what, attempt, idempotent=idempotent)

    def on_connection(
        self,
        pool: psycopg_pool.ConnectionPool[Any],
        what: str,
        op: Callable[[psycopg.Connection[Any]], T],
        *,
        idempotent: bool,
    ) -> T:
        """:meth:`run` ``op`` on a live connection borrowed from ``pool``, in autocommit
        and without a cursor (``op`` talks to it at the libpq level)."""

        def attempt(budget: float) -> T:
            with borrow(pool, budget) as conn:
                return op(conn)

        return self.run(what, attempt, idempotent=idempotent)


@contextlib.contextmanager
def borrow(
    pool: psycopg_pool.ConnectionPool[Any], timeout: float
) -> Iterator[psycopg.Connection[Any]]:
    """A connection from ``pool`` that passed :func:`check_idle`, within ``timeout``.

    A dead connection goes back to the pool, which drops it and opens a replacement,
    and the next one is tried at once. (The pool's own ``check=`` hook would sleep a
    second or more between failed checks: after a restart every idle one has failed.)
    Raises :class:`NotSent` when no live connection came in time.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = pool.getconn(timeout=max(deadline - time.monotonic(), 0.001))
        except psycopg_pool.PoolTimeout as exc:
            raise NotSent(exc) from exc
        try:
            check_idle(conn)
        except psycopg.Error:
            pool.putconn(conn)
            continue
        break
    try:
        yield conn
    finally:
        pool.putconn(conn)
