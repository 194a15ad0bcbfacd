"""Lease math: how long a lease lasts and when to renew it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

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
