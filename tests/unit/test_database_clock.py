"""The database clock's offset comes from the read with the shortest round trip: a slow
first read (connecting, a busy process) does not skew a process's clock for long."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from treadle.store.postgres.dbclock import SAMPLES, DatabaseClock


def test_a_slow_read_does_not_skew_the_offset() -> None:
    calls = 0

    def read() -> datetime:
        nonlocal calls
        calls += 1
        if calls == 1:
            # Connecting: the server answers at once, the answer reaches us 60 ms later.
            server = datetime.now(UTC)
            time.sleep(0.06)
            return server
        return datetime.now(UTC)  # the same clock, answered at once

    clock = DatabaseClock(read)
    clock.now()
    assert calls == SAMPLES
    # One read alone would have put this clock ~30 ms behind the server's.
    assert abs(clock.offset) < timedelta(milliseconds=10)


def test_the_offset_follows_a_server_clock_that_differs() -> None:
    ahead = timedelta(seconds=42)
    clock = DatabaseClock(lambda: datetime.now(UTC) + ahead)
    now = clock.now()
    assert abs(clock.offset - ahead) < timedelta(milliseconds=10)
    assert abs(now - (datetime.now(UTC) + ahead)) < timedelta(milliseconds=10)
