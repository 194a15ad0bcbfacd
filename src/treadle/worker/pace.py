"""When a worker writes its heartbeat (ADR 0029): at the lease's pace while it holds
leases, at a slower one while it holds none.

A heartbeat renews the leases a worker holds and records the worker itself
(``treadle_workers``: the workers page, the metrics). A worker holding nothing renews
nothing, and its death is noticed without the heartbeat (its session's lock on
PostgreSQL, its process on SQLite, ADR 0018), so its beat only keeps the row fresh for
people: every ``idle`` seconds, well inside the page's 60 s before "stale". On SQLite
every commit also ends the other workers' waits for work, so an idle beat is paid by
every worker of the file.

The moment it holds a lease it beats again within the lease's own interval of its last
beat, as if it had beaten at the lease's pace all along: a claim made just after an idle
beat is renewed no later than the lease's heartbeat interval after that beat, well inside
the lease.
"""

from __future__ import annotations

from dataclasses import dataclass

# How often a worker holding no lease records itself (ADR 0029): the workers page calls a
# worker stale after 60 s without a beat.
IDLE_HEARTBEAT = 30.0
# After a failed beat (the store unreachable), try again this soon.
RETRY_AFTER = 0.5


@dataclass
class HeartbeatPace:
    """Decides when the next heartbeat is due, on the monotonic clock it is given."""

    interval: float  # while holding leases: the lease's heartbeat interval
    idle: float = IDLE_HEARTBEAT
    _last: float | None = None  # when the last beat was written
    _next: float = 0.0  # when the next is due at the pace it was scheduled with

    def due(self, now: float, *, holding: bool) -> bool:
        """Is a beat due now? ``holding``: the worker holds at least one lease."""
        if holding and self._last is not None:
            # Held since the last beat, scheduled at the idle pace: pull it in.
            return now >= min(self._next, self._last + self.interval)
        return now >= self._next

    def beaten(self, now: float, *, holding: bool) -> None:
        """A beat was written at ``now``; ``holding``: it renewed at least one lease."""
        self._last = now
        self._next = now + (self.interval if holding else max(self.interval, self.idle))

    def failed(self, now: float) -> None:
        """A beat could not be written: try again soon (not at once in a loop)."""
        self._next = now + RETRY_AFTER
        self._last = None  # the retry time stands, held or not
