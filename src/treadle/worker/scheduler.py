"""The scheduler: enqueues periodic and cron jobs when their time comes round.

Every worker may run one. Each slot's job carries the idempotency key
``periodic:<task>:<slot>``, so however many schedulers tick at once, a slot
yields exactly one job. Cron ticks work the same way (``cron:<task>:<epoch>``); their
stored state (paused, last tick handled) lets a scheduler that starts after downtime catch
up by the schedule's policy (ADR 0010). (Delayed jobs need no scheduler: ``run_at`` does.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.cron import CronSchedule, Overlap, ScheduleState
from treadle.core.errors import ConfigurationError
from treadle.core.job import JobFilter
from treadle.core.lifecycle import JobStatus
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
            return self.run_crons()
        created = sum(1 for h in self.app.enqueue(jobs) if h.created)
        if created:
            log.info("periodic jobs enqueued", count=created)
        return created + self.run_crons()

    def run_crons(self) -> int:
        """Enqueue every cron tick due since the last one handled; returns new jobs."""
        if not self.app.crons:
            return 0
        now = self.clock.now()
        states = self.app.store.schedule_states()
        created = 0
        for sched in self.app.crons:
            state = states.get(sched.name, ScheduleState(sched.name))
            if state.last_fire is None:
                # First sight: start from now (no back-fill of a schedule's whole past).
                self.app.store.schedule_fired(sched.name, now)
                continue
            fires = sched.due(state.last_fire, now)
            if not fires:
                continue
            if not state.paused:
                created += self._fire(sched, fires)
            # A paused schedule's ticks are handled by skipping them, so resuming does not
            # replay the pause.
            self.app.store.schedule_fired(sched.name, fires[-1])
        return created

    def _fire(self, sched: CronSchedule, fires: list[datetime]) -> int:
        if sched.overlap is not Overlap.ALLOW:
            active = self.app.list_jobs(JobFilter(
                task=sched.task, statuses=(JobStatus.QUEUED, JobStatus.RUNNING), limit=50))
            waiting = any(j.status is JobStatus.QUEUED for j in active)
            if (sched.overlap is Overlap.SKIP and active) or waiting:
                log.info("cron tick skipped: previous run still going", task=sched.task)
                return 0
            fires = fires[-1:]  # one run at most while others may be going
        task = self.app.get_task(sched.task)
        jobs = [task.new_job(sched.payload, idempotency_key=sched.idempotency_key(f), run_at=f)
                for f in fires]
        created = sum(1 for h in self.app.enqueue(jobs) if h.created)
        if created:
            log.info("cron jobs enqueued", task=sched.task, count=created)
        return created
