"""Flow-control operations shared by both SQL backends (ADR 0010): cron schedule
state, retention and the counts behind "why is this job not running?".

Each backend supplies ``_read`` and ``_write`` (one named statement, in a transaction of
its own); everything else is the same and lives here once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from treadle.core.clock import Clock
from treadle.core.cron import ScheduleState
from treadle.core.errors import InvalidInput
from treadle.core.fairness import check_weight
from treadle.core.job import DEFAULT_RETENTION, Job, validate_name
from treadle.store.rows import Codec

__all__ = ["DEFAULT_RETENTION", "FlowOps", "KeyPlan"]


class KeyPlan(NamedTuple):
    """One per-key limited group a claim plans to take from (ADR 0010): a concurrency key
    and its limit, or (``period`` set) a rate key, its starts and window; and for jobs
    with both rules, the rate limit beside the concurrency limit (``rkey``...)."""

    key: str
    limit: int
    period: float | None
    rkey: str | None = None
    rlimit: int | None = None
    rperiod: float | None = None


class FlowOps:
    clock: Clock
    codec: Codec
    _rate_wake: float | None = None  # monotonic time a rate-limited key has room again

    def _read(self, name: str, params: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
        raise NotImplementedError

    def _write(self, name: str, params: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
        raise NotImplementedError

    def _enc_ts(self, value: datetime) -> Any:
        raise NotImplementedError

    # -- rate limits -------------------------------------------------------------

    def rate_wait(self, until_free: timedelta) -> None:
        """A claim found a rate-limited key full until ``until_free`` from now: wake the
        next wait_for_work by then (no notification says a window moved on)."""
        at = time.monotonic() + max(0.005, until_free.total_seconds())
        current = getattr(self, "_rate_wake", None)
        if current is None or at < current or current < time.monotonic():
            self._rate_wake = at

    def rate_clamp(self, timeout: float) -> float:
        wake: float | None = getattr(self, "_rate_wake", None)
        if wake is None:
            return timeout
        left = wake - time.monotonic()
        if left <= 0:
            self._rate_wake = None
            return min(timeout, 0.0)
        return min(timeout, left)

    def started_in_window(self, key: str, period: float) -> int:
        since = self.clock.now() - timedelta(seconds=period)
        rows = self._read("started_in_window", {"key": key, "since": self._enc_ts(since)})
        return int(rows[0]["n"]) if rows else 0

    # -- cron schedules --------------------------------------------------------

    def schedule_states(self) -> dict[str, ScheduleState]:
        return {
            r["name"]: ScheduleState(r["name"], bool(r["paused"]),
                                     self.codec.opt_ts(r["last_fire"]))
            for r in self._read("schedule_states", {})
        }

    def set_schedule_paused(self, name: str, paused: bool) -> None:
        now = self._enc_ts(self.clock.now())
        self._write("set_schedule_paused", {"name": name, "paused": paused, "now": now})

    def schedule_fired(self, name: str, fire: datetime) -> None:
        """Record ``fire`` as handled (it only ever moves the stored tick forward)."""
        self._write("schedule_fired", {"name": name, "fire": self._enc_ts(fire),
                                       "now": self._enc_ts(self.clock.now())})

    # -- tenant fairness -------------------------------------------------------

    def set_tenant_weight(self, tenant: str, weight: int) -> None:
        validate_name("tenant", tenant)
        self._write("set_tenant_weight", {"name": tenant, "weight": check_weight(weight)})

    def tenant_weights(self) -> dict[str, int]:
        return {r["name"]: int(r["weight"]) for r in self._read("tenant_weights", {})}

    # -- retention -------------------------------------------------------------

    def set_retention(self, queue: str, seconds: float | None) -> None:
        """Keep ``queue``'s finished jobs ``seconds`` (None: the default, 7 days)."""
        validate_name("queue", queue)
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, int | float)
            or not 60 <= seconds <= 10 * 365 * 24 * 3600
        ):
            raise InvalidInput("retention must be between 60 s and ten years")
        self._write("set_retention", {"name": queue,
                                      "seconds": None if seconds is None else int(seconds)})

    def prune(self, *, limit: int = 500, older_than: float | None = None) -> int:
        """Delete one batch of finished jobs past retention (``older_than`` seconds
        overrides every queue's); returns how many went."""
        if limit < 1:
            raise InvalidInput("prune batch must be >= 1")
        if older_than is not None and older_than < 0:
            raise InvalidInput("older_than must be >= 0 seconds")
        now = self.clock.now()
        if older_than is not None:
            shortest = older_than
        else:
            row = self._read("min_retention", {})
            stored = row[0]["s"] if row and row[0]["s"] is not None else DEFAULT_RETENTION
            shortest = min(float(stored), DEFAULT_RETENTION)
        rows = self._write("prune_finished", {
            "now": self._enc_ts(now), "cutoff": self._enc_ts(now - timedelta(seconds=shortest)),
            "override": older_than, "default": DEFAULT_RETENTION, "limit": limit,
        })
        return len(rows)

    # -- recovery --------------------------------------------------------------

    def next_lease_expiry(self) -> datetime | None:
        """When the earliest lease of a running job runs out (the reaper's next due time)."""
        rows = self._read("next_lease_expiry", {})
        return self.codec.opt_ts(rows[0]["at"]) if rows else None

    def lease_due_in(self) -> float | None:
        """Seconds until the earliest lease runs out by this store's clock; None: none."""
        at = self.next_lease_expiry()
        return None if at is None else max(0.0, (at - self.clock.now()).total_seconds())

    # -- explanations ----------------------------------------------------------

    def running_with_key(self, key: str) -> int:
        rows = self._read("running_with_key", {"key": key})
        return int(rows[0]["n"]) if rows else 0

    def queued_ahead_in_tenant(self, job: Job) -> int:
        """Runnable jobs of the same tenant and queue that the claim order puts first."""
        now = self.clock.now()
        rows = self._read("queued_ahead_in_tenant", {
            "tenant": job.tenant, "queue": job.queue, "now": self._enc_ts(now),
            "priority": job.priority, "run_at": self._enc_ts(job.run_at), "id": job.id,
        })
        return int(rows[0]["n"]) if rows else 0
