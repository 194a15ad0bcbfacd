"""The reaper: finds jobs whose lease expired and re-queues or fails them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from treadle.core.errors import ConfigurationError
from treadle.core.lease import ReapResult
from treadle.logs import get_logger
from treadle.store import Store

log = get_logger("treadle.reaper")

REAP_SLACK = 0.02  # seconds after the expiry, so the lease is past on the store's clock
PROBE_INTERVAL = 0.25  # how often a worker re-reads the earliest lease expiry
# How often a worker looks for dead workers (ADR 0018): a killed worker's jobs run
# again within about this plus the time its session takes to end (well under 2 s).
DEAD_INTERVAL = 1.0


@dataclass
class Reaper:
    """Every worker runs one. Cheap when many do: with nothing expired a pass is
    one indexed probe without locks, and on PostgreSQL concurrent reapers skip
    each other's rows (``SKIP LOCKED``)."""

    store: Store
    interval: float = 5.0
    batch: int = 500

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ConfigurationError("reaper interval must be positive")
        if self.batch < 1:
            raise ConfigurationError("reaper batch must be >= 1")

    def due_in(self) -> float | None:
        """Seconds until the next reap is worth doing: when the earliest lease runs out
        (so a frozen worker's jobs run again within lease + a moment, ADR 0010), at most
        ``interval``; None when no job is running at all (nothing can expire before the
        next probe: an idle worker then neither reaps nor probes often, ADR 0017)."""
        due = self.store.lease_due_in()
        return None if due is None else min(self.interval, due + REAP_SLACK)

    def run_dead_once(self) -> ReapResult:
        """Re-queue the jobs of workers known dead (ADR 0018): their session ended
        (PostgreSQL) or their process is gone (SQLite). Leases stay the guard against
        workers that are alive but frozen or cut off."""
        return self._drain(self.store.reap_dead, "re-queued the jobs of dead workers")

    def run_once(self) -> ReapResult:
        return self._drain(self.store.reap, "reaped expired leases")

    def _drain(self, reap: Callable[..., ReapResult], what: str) -> ReapResult:
        total = ReapResult()
        while True:
            res = reap(limit=self.batch)
            total = ReapResult(
                total.requeued + res.requeued,
                total.failed + res.failed,
                total.cancelled + res.cancelled,
                total.quarantined + res.quarantined,
            )
            if res.total < self.batch:
                break
        if total.total:
            log.info(
                what,
                requeued=total.requeued,
                failed=total.failed,
                cancelled=total.cancelled,
                quarantined=total.quarantined,
            )
        if total.quarantined:
            log.warning("quarantined poison jobs (their workers kept dying under them)",
                        count=total.quarantined)
        return total
