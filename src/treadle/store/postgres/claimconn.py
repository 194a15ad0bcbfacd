"""A claiming thread's own connection: it listens for work while the thread waits, and the
thread's claims run on it (ADR 0031).

The shared :class:`~treadle.store.postgres.listener.Listener` wakes a waiter through a
second thread, and the claim then runs on a pooled connection whose backend has slept
since the last claim: two process wake-ups and a thread hand-off on the way from the
enqueue's commit to the claim. Here the waiting thread itself sits in ``select()`` on a
connection that ``LISTEN``s, and claims on that same connection, whose backend has just
run (it forwarded the notification).

It also listens on a channel of its own, ``handoff_channel``: an enqueue that hands its
job straight to this connection's parked worker (ADR 0034) sends the claimed row there.
Those notifications are not hints but deliveries; they are kept until taken. Each
connection holds a session advisory lock under a random key of its own (``lock_key``):
an enqueue hands a job only to a parked row whose lock is held, that is, whose
connection still listens.

A work notification is a hint, never the source of truth (ADR 0003): a wait that finds the
connection gone reconnects and reports a wake-up (something may have happened while it was
away), and an outage makes the wait a plain timed one. The connection belongs to one
thread; other threads only ever call :meth:`interrupt` (a byte down a pipe) and, at the
store's close, :meth:`close`.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg.rows import dict_row

from treadle.store.postgres.connect import connect_kwargs
from treadle.store.postgres.session import hold_random_lock

# Named for people reading pg_stat_activity: the backend a worker waits and claims on.
APPLICATION_NAME = "treadle claim"
CHANNEL = "treadle_jobs"  # the work notifications (enqueue, re-queue, reap, retry, ...)
# Reads of pending input per look: a busy enqueuer may keep the socket readable; what is
# left is read at the next look (the claim that follows reads the truth anyway).
_ABSORB_READS = 64


class ClaimConnection:
    def __init__(self, url: str, handoff_channel: str) -> None:
        self._url = url
        self._handoff = handoff_channel
        self._handoff_b = handoff_channel.encode()
        self._conn: psycopg.Connection[Any] | None = None
        self._seq = 0  # work notifications seen on this connection
        # Hand-off payloads received and not yet taken; the owner thread reads and takes
        # them, a heartbeat's absorb() may add to them: under _lock.
        self._handed: list[str] = []
        self.generation = 0  # connections made: a new one is another backend
        self.lock_key = 0  # the session lock the current connection holds (0: none yet)
        self._closed = False
        self._pipe_closed = False
        self._lock = threading.Lock()  # close() against the owner's (re)connect
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    @property
    def connected(self) -> bool:
        return self._conn is not None

    def mark(self) -> int:
        """The count of work notifications so far: a later wait returns at once if it moved."""
        return self._seq

    def connection(self) -> psycopg.Connection[Any]:
        """The live connection, connecting (and listening) if there is none; raises
        ``psycopg.Error`` when the server cannot be reached. Notifications already
        received are counted first, and a connection the server closed is replaced."""
        conn = self._conn
        if conn is not None:
            try:
                self._absorb(conn)
                return conn
            except psycopg.Error:
                self.discard()
        return self._connect()

    def absorb(self) -> None:
        """Read what arrived while the owner neither waits nor claims (a worker whose slots
        are all busy): the server's notifications must not pile up unread, or the
        backend blocks sending them and holds back the server's notification queue."""
        conn = self._conn
        if conn is None:
            return
        try:
            self._absorb(conn)
        except psycopg.Error:
            self.discard()

    def take_handed(self) -> list[str]:
        """The hand-off payloads received so far (ADR 0034), each once."""
        with self._lock:
            out, self._handed = self._handed, []
        return out

    def has_handed(self) -> bool:
        return bool(self._handed)

    def discard(self) -> None:
        """Drop the connection (it failed); the next use connects again."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def wait(self, seen: int, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a work notification newer than ``seen`` or an
        :meth:`interrupt`; True if one came, or if the connection had to be made anew
        (what happened meanwhile is unknown). During an outage: a timed wait, False.
        An interrupt made before the wait began ends it at once, and is used up by it."""
        if self._closed or self._drain_pipe() or self._seq != seen or self._handed:
            return True
        deadline = time.monotonic() + timeout
        conn = self._conn
        if conn is None:
            try:
                self._connect()
                return True
            except psycopg.Error:
                self._sleep(deadline)
                return False
        try:
            self._absorb(conn)  # what came since the claim, read or not
        except psycopg.Error:
            self.discard()
            return True
        if self._seq != seen or self._handed:
            return True
        while not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                ready, _, _ = select.select([conn.fileno(), self._wake_r], [], [], remaining)
            except (OSError, ValueError, psycopg.Error):  # closed under us
                self.discard()
                return True
            if self._wake_r in ready:
                self._drain_pipe()
                return True
            if ready:
                try:
                    self._absorb(conn)
                except psycopg.Error:
                    self.discard()
                    return True
                if self._seq != seen or self._handed:
                    return True
        return True

    def interrupt(self) -> None:
        """End the owner's wait (any thread). After close() it does nothing: the pipe's
        descriptor numbers may belong to another file by then."""
        with self._lock:
            if self._pipe_closed:
                return
            with contextlib.suppress(OSError):  # a full pipe already wakes it
                os.write(self._wake_w, b"x")

    def close(self) -> None:
        """Idempotent: the pipe is closed once (closing a descriptor number twice could
        close another file that reused it)."""
        self._closed = True
        self.interrupt()
        self.discard()
        with self._lock:
            if self._pipe_closed:
                return
            self._pipe_closed = True
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    # -- inside ----------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise psycopg.OperationalError("the store is closed")
        conn = psycopg.connect(self._url, autocommit=True, row_factory=dict_row,
                               application_name=APPLICATION_NAME, **connect_kwargs())
        try:
            # Notifications that arrive while a claim runs on this connection are
            # dispatched by psycopg to this handler; those that arrive while it waits are
            # read by _absorb.
            conn.add_notify_handler(self._on_notify)
            # One round trip (no parameters: the simple protocol takes several statements).
            conn.execute(sql.SQL("LISTEN {}; LISTEN {}").format(
                sql.Identifier(CHANNEL), sql.Identifier(self._handoff)))
            key = hold_random_lock(conn)
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if self._closed:
                conn.close()
                raise psycopg.OperationalError("the store is closed")
            self._conn = conn
            self.generation += 1
            self.lock_key = key
        return conn

    def _on_notify(self, note: psycopg.Notify) -> None:
        if note.channel == CHANNEL:
            self._seq += 1
        elif note.channel == self._handoff:
            with self._lock:
                self._handed.append(note.payload)

    def _absorb(self, conn: psycopg.Connection[Any]) -> None:
        """Read what the server sent while the connection was idle, without blocking:
        notifications are counted; a goodbye (a restart) raises ``OperationalError``."""
        if conn.closed:
            raise psycopg.OperationalError("connection is closed")
        pgconn = conn.pgconn
        # First what libpq has read but not parsed: a notification that came in the same
        # read as a claim's answer sits in its buffer, and the socket will not say so
        # (select() waited for the next notification, ~one enqueue interval late).
        self._count_notifies(pgconn)
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        for _ in range(_ABSORB_READS):
            if not poller.poll(0):
                return
            pgconn.consume_input()  # raises OperationalError on EOF
            if pgconn.status != pq.ConnStatus.OK:
                raise psycopg.OperationalError("connection closed by the server")
            self._count_notifies(pgconn)

    def _count_notifies(self, pgconn: pq.abc.PGconn) -> None:
        # PQnotifies parses what is buffered before answering.
        while (note := pgconn.notifies()) is not None:
            if note.relname == CHANNEL.encode():
                self._seq += 1
            elif note.relname == self._handoff_b:
                with self._lock:
                    self._handed.append(note.extra.decode())

    def _drain_pipe(self) -> bool:
        """Use up the interrupts made so far; True if there was one."""
        hit = False
        with contextlib.suppress(OSError):  # empty (non-blocking), or closed
            while os.read(self._wake_r, 512):
                hit = True
        return hit

    def _sleep(self, deadline: float) -> None:
        """A timed wait an interrupt still ends (the server is unreachable)."""
        remaining = deadline - time.monotonic()
        if remaining > 0 and not self._closed:
            with contextlib.suppress(OSError, ValueError):
                ready, _, _ = select.select([self._wake_r], [], [], remaining)
                if ready:
                    self._drain_pipe()
