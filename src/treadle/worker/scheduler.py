"""The scheduler: enqueues periodic jobs when their time slot comes round.

Every worker may run one. Each slot's job carries the idempotency key
``periodic:<task>:<slot>``, so however many schedulers tick at once, a slot
yields exactly one job. (Delayed jobs need no scheduler: ``run_at`` does it.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.errors import ConfigurationError
from treadle.logs import get_logger

if TYPE_CHECKING:
    from treadle.app import Treadle

log = get_logger("treadle.scheduler")


@dataclass(frozen=True)
class Periodic:
    """Run ``task`` every ``every`` seconds, aligned to the epoch (slots are shared)."""

    task: str
    every: float
    payload: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.every <= 366 * 24 * 3600:
            raise ConfigurationError("periodic interval must be between 1 s and a year")

    def slot(self, now: datetime) -> int:
        return math.floor(now.timestamp() / self.every)


class Scheduler:
    def __init__(self, app: Treadle, clock: Clock = SYSTEM_CLOCK) -> None:
        self.app = app
        self.clock = clock
        self._last: dict[str, int] = {}

    def run_once(self) -> int:
        """Enqueue the current slot of every periodic task not yet done; returns new jobs."""
        now = self.clock.now()
        jobs = []
        for p in self.app.periodics:
            slot = p.slot(now)
            if self._last.get(p.task) == slot:
                continue
            task = self.app.get_task(p.task)
            jobs.append(task.new_job(
                p.payload,
                idempotency_key=f"periodic:{p.task}:{slot}",
                run_at=datetime.fromtimestamp(slot * p.every, UTC),
            ))
            self._last[p.task] = slot
        if not jobs:
            return 0
        created = sum(1 for h in self.app.enqueue(jobs) if h.created)
        if created:
            log.info("periodic jobs enqueued", count=created)
        return created
