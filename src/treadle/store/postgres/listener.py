"""A dedicated LISTEN connection that wakes job waiters (``wait_for_finish``).

A worker's claim loop waits for work on its claim connection instead (``claimconn.py``,
ADR 0031); this thread wakes a second thread's wait for work only, while the claim
connection is in use.

Notifications are a latency optimisation, never the source of truth: every
waiter also re-reads the store on a slow timer, so a notification lost while
the connection was being re-established costs latency, not correctness.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg

from treadle.store.postgres.connect import connect_kwargs


class Listener:
    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._cond = threading.Condition()
        self._work_seq = 0  # bumped on every treadle_jobs notification
        self._done_seq = 0  # bumped on every treadle_done notification
        self._stop = False
        # Set by interrupt() and consumed by the next wait_work: a worker told to stop
        # between its last look at its stop flag and its wait must not sleep a whole
        # idle wait (ADR 0029) on a wake-up that came before the wait began.
        self._interrupted = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="treadle-pg-listener", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop:
            try:
                with psycopg.connect(self._conninfo, autocommit=True, **connect_kwargs()) as conn:
                    conn.execute("LISTEN treadle_jobs")
                    conn.execute("LISTEN treadle_done")
                    backoff = 0.1
                    # Wake everyone once: something may have happened while we were away.
                    self._bump(work=True)
                    self._bump(work=False)
                    while not self._stop:
                        for note in conn.notifies(timeout=1.0):
                            self._on_notify(note)
            except psycopg.Error:
                time.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _on_notify(self, note: Any) -> None:
        if note.channel == "treadle_jobs":
            self._bump(work=True)
        else:
            # Waiters re-read the jobs they wait for; the payload (ids) is for humans.
            self._bump(work=False)

    def _bump(self, *, work: bool) -> None:
        with self._cond:
            if work:
                self._work_seq += 1
            else:
                self._done_seq += 1
            self._cond.notify_all()

    def interrupt(self) -> None:
        """End the current or the next ``wait_work`` at once."""
        with self._cond:
            self._interrupted = True
            self._cond.notify_all()

    def work_seq(self) -> int:
        with self._cond:
            return self._work_seq

    def wait_work(self, seen: int, timeout: float) -> bool:
        """Wait until a work notification newer than ``seen`` arrives."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._work_seq == seen and not self._stop:
                if self._interrupted:
                    self._interrupted = False
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def done_seq(self) -> int:
        with self._cond:
            return self._done_seq

    def wait_done(self, seen: int, timeout: float) -> None:
        """Wait until a completion notification newer than ``seen`` arrives."""
        with self._cond:
            self._cond.wait_for(lambda: self._done_seq != seen or self._stop, timeout)
