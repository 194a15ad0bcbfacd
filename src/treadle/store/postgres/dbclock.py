"""Lease times from the database's clock (ADR 0010).

Workers on machines whose clocks disagree must still agree on when a lease expires, or a
worker running fast would reap (and re-run) a live worker's job. The store's clock is the
server's: local monotonic time plus an offset to ``clock_timestamp()``, re-measured every
few seconds (half a round trip of error, well under a lease). Only the system clock is
replaced; an injected test clock is used as given.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from treadle.logs import get_logger

log = get_logger("treadle.store.postgres")

# Clocks of NTP-synchronised machines drift by microseconds a minute: re-measuring every
# 30 s keeps the error at about half a round trip and an idle worker's queries few.
RESYNC_SECONDS = 30.0
# Reads of the server's clock per sync (the one with the shortest round trip counts):
# 3 every RESYNC_SECONDS, 0.1 statement/s for an idle worker (ADR 0029's budget is 1).
SAMPLES = 3


class DatabaseClock:
    """``now()`` in the database server's time; ``monotonic()`` is local."""

    def __init__(self, read_server_time: Callable[[], datetime],
                 resync: float = RESYNC_SECONDS) -> None:
        self._read = read_server_time
        self._resync = resync
        self._offset = timedelta(0)
        self._next = 0.0
        self._lock = threading.Lock()

    def _sync(self) -> None:
        # The offset is exact to half the read's round trip, so the read with the
        # shortest one is kept. A single read was not enough: the first one of a process
        # includes connecting (and a busy process's GIL may hold the answer for
        # milliseconds), which put a producer's clock milliseconds ahead of its workers'
        # for the next RESYNC_SECONDS: each job it stamped looked not yet due to the
        # worker woken for it, and ran only at the next wake-up (pickup p50 ~23 ms
        # instead of ~2 with a job every 20 ms).
        best: tuple[timedelta, timedelta] | None = None
        for _ in range(SAMPLES):
            before = datetime.now(UTC)
            server = self._read()
            after = datetime.now(UTC)
            rtt = after - before
            if best is None or rtt < best[0]:
                best = (rtt, server - (before + rtt / 2))
        assert best is not None
        self._offset = best[1]

    def now(self) -> datetime:
        mono = time.monotonic()
        if mono >= self._next:
            with self._lock:
                if mono >= self._next:
                    try:
                        self._sync()
                    except Exception as exc:  # keep the last offset; the next call retries
                        log.warning("cannot read the database clock", error=repr(exc))
                    self._next = mono + self._resync
        return datetime.now(UTC) + self._offset

    def monotonic(self) -> float:
        return time.monotonic()

    @property
    def offset(self) -> timedelta:
        return self._offset
