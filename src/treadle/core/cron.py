"""Cron schedules (ADR 0010): when a schedule fires, and what happens then.

Parsing and next-time arithmetic are ``cronsim``'s (five fields, or six with seconds
first; ``L``, ``#``, DST as Debian cron). This module only validates a declaration up
front and answers "which fire times lie in (after, until]".
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from treadle.core.errors import ConfigurationError

# A schedule never enqueues more than this many missed ticks in one pass (catch-up "all").
MAX_CATCH_UP = 1000


class Overlap(enum.StrEnum):
    """What a tick does while an earlier run of the schedule is still queued or running."""

    SKIP = "skip"  # drop the tick
    ALLOW = "allow"  # enqueue anyway
    BUFFER_ONE = "buffer_one"  # enqueue if none is waiting to start (one may be running)


class CatchUp(enum.StrEnum):
    """After downtime (ticks missed while no scheduler ran): which of them to enqueue."""

    LATEST = "latest"  # only the most recent missed tick
    ALL = "all"  # every missed tick within the window


@dataclass(frozen=True)
class CronSchedule:
    """``task`` enqueued at every fire time of ``expr`` in time zone ``tz``."""

    task: str
    expr: str
    tz: str = "UTC"
    overlap: Overlap = Overlap.SKIP
    catch_up: CatchUp = CatchUp.LATEST
    window: float = 3600.0  # seconds looked back for catch_up="all"
    payload: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"cron schedule of task {self.task!r}"
        try:
            zone = ZoneInfo(self.tz) if self.tz != "UTC" else UTC
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ConfigurationError(f"{where}: unknown time zone {self.tz!r}") from None
        if not isinstance(self.expr, str) or len(self.expr.split()) not in (5, 6):
            raise ConfigurationError(
                f"{where}: {self.expr!r} is not a cron expression "
                "(five fields, or six with seconds first)"
            )
        try:
            next(CronSim(self.expr, datetime.now(zone)))
        except CronSimError as exc:
            raise ConfigurationError(f"{where}: bad cron expression {self.expr!r}: {exc}") from None
        except StopIteration:
            raise ConfigurationError(f"{where}: {self.expr!r} never fires") from None
        if not 1 <= self.window <= 31 * 24 * 3600:
            raise ConfigurationError(f"{where}: window must be between 1 s and 31 days")

    @classmethod
    def build(
        cls, task: str, expr: str, *, tz: str = "UTC", overlap: str = "skip",
        catch_up: str = "latest", window: float = 3600.0,
        payload: Mapping[str, Any] | None = None,
    ) -> CronSchedule:
        """From plain values (decorator, config): a bad policy name is refused naming
        the task."""
        try:
            ov, cu = Overlap(overlap), CatchUp(catch_up)
        except ValueError as exc:
            raise ConfigurationError(f"cron schedule of task {task!r}: {exc}") from None
        if payload is not None and not isinstance(payload, Mapping):
            raise ConfigurationError(f"cron schedule of task {task!r}: payload must be a dict")
        return cls(task, expr, tz, ov, cu, window, dict(payload or {}))

    @property
    def name(self) -> str:
        return self.task

    @property
    def zone(self) -> ZoneInfo | Any:
        return UTC if self.tz == "UTC" else ZoneInfo(self.tz)

    def next_fires(self, after: datetime, count: int = 1) -> list[datetime]:
        """The next ``count`` fire times strictly after ``after`` (UTC-aware)."""
        it = CronSim(self.expr, after.astimezone(self.zone))
        out = []
        for _ in range(count):
            try:
                out.append(next(it).astimezone(UTC))
            except StopIteration:
                break
        return out

    def due(self, last: datetime | None, now: datetime) -> list[datetime]:
        """The fire times to enqueue now, given the last one handled (None: never).

        A schedule seen for the first time starts from ``now`` (no back-fill); after
        downtime, ``latest`` yields the most recent missed tick, ``all`` each one
        within ``window``."""
        if last is None:
            return []
        start = last
        if self.catch_up is CatchUp.ALL:
            start = max(last, now - timedelta(seconds=self.window))
        elif now - last > timedelta(seconds=1):
            # Only the latest is wanted: step back from now instead of iterating the gap.
            # (Whole seconds, so cronsim's first reverse tick lands on floor(now).)
            top = now.replace(microsecond=0) + timedelta(seconds=1)
            prev = CronSim(self.expr, top.astimezone(self.zone), reverse=True)
            try:
                latest = next(prev).astimezone(UTC)
            except StopIteration:
                return []
            return [latest] if last < latest <= now else []
        fires: list[datetime] = []
        it = CronSim(self.expr, start.astimezone(self.zone))
        for t in it:
            at = t.astimezone(UTC)
            if at > now or len(fires) >= MAX_CATCH_UP:
                break
            fires.append(at)
        return fires

    def idempotency_key(self, fire: datetime) -> str:
        # One job per tick however many schedulers run: the tick's epoch names it.
        return f"cron:{self.task}:{int(fire.timestamp())}"


@dataclass(frozen=True)
class ScheduleState:
    """A schedule's stored operator state (``treadle_schedules``)."""

    name: str
    paused: bool = False
    last_fire: datetime | None = None
