"""Lease math (how long a lease lasts, when to renew it) and what heartbeats and the
reaper of expired leases report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from treadle.core.errors import ConfigurationError


@dataclass(frozen=True)
class LeaseConfig:
    """``seconds`` is the lease length; heartbeats come every ``seconds / renewals``.

    Renewing three times per lease means two heartbeats can be lost (a GC
    pause, a slow database) before the lease runs out under a live worker.
    """

    seconds: float = 30.0
    renewals: int = 3

    def __post_init__(self) -> None:
        if not 0.2 <= self.seconds <= 24 * 3600:
            raise ConfigurationError("lease seconds must be between 0.2 and 86400")
        if self.renewals < 2:
            raise ConfigurationError("a lease must be renewed at least twice per period")

    @property
    def heartbeat_interval(self) -> float:
        return self.seconds / self.renewals

    def expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.seconds)


def is_expired(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is not None and expires_at <= now


@dataclass(frozen=True)
class HeartbeatResult:
    """What a heartbeat learnt about the leases a worker holds."""

    lost: frozenset[int] = frozenset()  # leases this worker no longer holds
    cancel_requested: frozenset[int] = frozenset()


@dataclass(frozen=True)
class ReapResult:
    """What one reaper pass did with expired leases."""

    requeued: int = 0
    failed: int = 0
    cancelled: int = 0
    quarantined: int = 0  # poison jobs: their worker died under them max_crashes times

    @property
    def total(self) -> int:
        return self.requeued + self.failed + self.cancelled + self.quarantined


@dataclass(frozen=True)
class WorkerInfo:
    """A worker's liveness record (written by its heartbeats)."""

    id: str
    started_at: datetime
    last_heartbeat: datetime
    info: dict[str, Any] = field(default_factory=dict)
