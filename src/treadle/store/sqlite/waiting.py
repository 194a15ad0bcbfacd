"""How an SQLite store waits: for work (a worker), for jobs to finish (a waiter).

There is no notification between processes on SQLite: a waiter watches
``PRAGMA data_version``, which changes when another connection commits, every couple
of milliseconds (ADR 0003), and this process's own commits wake it at once (``_notify``).
What may end an idle wait, and how fast it looks, is ADR 0025, 0029 and 0030.
A mixin of ``SQLiteStore``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from treadle.core.clock import Clock
from treadle.core.job import Job
from treadle.store.base import Parking

_POLL_SECONDS = 0.002
# While work flows (a claim here found jobs within the last BUSY_WINDOW s, or a waiter
# has just started waiting for a job to finish), waits look four times as often: the
# next job's pickup waits 0.25 ms on average instead of 1 ms, at ~2,000 reads of a
# shared-memory counter a second; an idle worker keeps the slower poll (ADR 0030).
_POLL_BUSY_SECONDS = 0.0005
BUSY_WINDOW = 1.0
# The longest an idle wait_for_work waits when no commit and no queued job's run_at says
# to look (a safety net: a clock step, a job written with another clock).
_IDLE_WAIT_CAP = 16.0


class WaitOps:
    clock: Clock
    _local: threading.local
    _wake: threading.Condition
    _seq: int
    _interrupted: bool
    _busy_until: float
    _conn: Callable[[], sqlite3.Connection]
    _busy_retry: Callable[[Callable[[], Any]], Any]
    _read: Callable[[str, Mapping[str, Any]], Sequence[Mapping[str, Any]]]
    rate_clamp: Callable[[float], float]
    get_job: Callable[..., Job]

    def _data_version(self) -> int:
        conn = self._conn()
        return int(self._busy_retry(lambda: conn.execute("PRAGMA data_version").fetchone()[0]))

    def _mark(self) -> tuple[int, int]:
        """What "nothing changed" looks like now: (in-process seq, other connections' commits)."""
        with self._wake:
            seq = self._seq
        return seq, self._data_version()

    def _notify(self) -> None:
        with self._wake:
            self._seq += 1
            self._wake.notify_all()

    def interrupt(self) -> None:
        with self._wake:
            self._interrupted = True
            self._seq += 1
            self._wake.notify_all()

    def _take_interrupt(self) -> bool:
        """Whether interrupt() was called since the last wait for work took it (only
        that wait takes it: a job waiter in another thread must not swallow a worker's
        stop)."""
        with self._wake:
            hit, self._interrupted = self._interrupted, False
            return hit

    def _wait_change(self, deadline: float, mark: tuple[int, int], *,
                     fast_until: float = 0.0, interruptible: bool = False) -> bool:
        """Wait until something changed since ``mark`` (taken *before* the caller last
        looked, so a commit in between is never missed), or time runs out."""
        seq, version = mark
        while True:
            with self._wake:
                if interruptible and self._interrupted:
                    return True
                if self._seq != seq:
                    return True
            if self._data_version() != version:
                return True
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                return False
            fast = now < max(self._busy_until, fast_until)
            poll = _POLL_BUSY_SECONDS if fast else _POLL_SECONDS
            with self._wake:
                if self._seq == seq:
                    self._wake.wait(min(poll, remaining))

    def wait_for_work(self, timeout: float, park: Parking | None = None) -> bool:
        # ``park`` is ignored: SQLite hands nothing off (ADR 0034); its workers poll the
        # one file, and a claim there is no second process's round trip.
        timeout = self.rate_clamp(timeout)
        mark = getattr(self._local, "claim_mark", None) or self._mark()
        self._local.claim_mark = None
        start = time.monotonic()
        cap = start + max(timeout, _IDLE_WAIT_CAP)
        due: float | None = None  # monotonic time the earliest queued job comes due
        read_at = (start, 0.0)  # (monotonic, store clock) when ``due`` was read
        while True:
            if self._wait_change(min(start + timeout, cap if due is None else due), mark,
                                 interruptible=True):
                # Interrupted (the worker stops; the mark may have been taken after the
                # interrupt), or work flows (ADR 0030): back to the caller, no look first.
                if self._take_interrupt() or time.monotonic() < self._busy_until:
                    return True
                fresh = self._mark()  # before looking: a commit after it ends the next wait
                if fresh[0] != mark[0] or self._read("work_exists", {})[0]["work"]:
                    return True
                # Another connection's commit left no job queued or running (a worker's
                # heartbeat, a registration): nothing to claim, no owner to watch. Wait
                # on for one read instead of an idle claim's (ADR 0029).
                mark = fresh
                continue
            # Every commit, from any process, ends the wait above (data_version): with
            # none, only time can have made a job claimable, a queued job's run_at
            # passing (delays, retry back-off). Wait on until then, up to the cap, and
            # spare the idle claim's three statements (issue 13, ADR 0025). Read again
            # if the store's clock did not move with the monotonic one (an injected
            # clock set forward, a clock step).
            now, wall = time.monotonic(), self.clock.now().timestamp()
            if due is None or abs((wall - read_at[1]) - (now - read_at[0])) > 0.05:
                rows = self._read("next_queued_run_at", {})
                at = rows[0]["at"] if rows else None
                due = cap if at is None else min(cap, now + float(at) - wall)
                read_at = (now, wall)
            if due <= now + 0.001:
                return False
            start = now

    def take_handed(self, worker: str) -> list[Job]:
        return []

    def unpark(self, worker: str) -> list[Job]:
        return []

    def wait_for_finish(self, job_ids: Sequence[int], timeout: float) -> None:
        start = time.monotonic()
        deadline = start + timeout
        pending = list(job_ids)
        while pending:
            mark = self._mark()
            pending = [j for j in pending if not self.get_job(j).is_finished]
            # A waiter (job.wait(), POST /v1/run) looks fast for its first moments, when
            # a short job is likely to end, then at the idle pace.
            if not pending or not self._wait_change(deadline, mark,
                                                    fast_until=start + BUSY_WINDOW):
                return
