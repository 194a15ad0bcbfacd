"""The maintenance thread: heartbeat, hard timeouts, reaping, pruning and services.

Everything a worker does on a timer rather than on a claim or an outcome, in one
thread: leases are renewed (and cancellations noticed) by the heartbeat, timeouts and
stalls are enforced, and the maintenance services run (reaper, pruner, scheduler,
the kinds' services such as the workflow waker).
"""

from __future__ import annotations

import math
import time

from treadle.core.errors import (
    ErrorClass,
    ErrorInfo,
    StoreUnavailable,
    Timeout,
)
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.logs import get_logger
from treadle.worker.pace import HeartbeatPace
from treadle.worker.reaper import DEAD_INTERVAL, PROBE_INTERVAL
from treadle.worker.slots import Slots
from treadle.worker.supervise import describe

log = get_logger("treadle.worker")

# After the claim loop saw a change, an idle worker probes for running jobs at once and
# again this much later (a peer's claim may commit a moment after the wake-up).
ACTIVITY_WINDOW = 0.5
# How often an idle worker looks whether a job runs anywhere when nothing woke it (ADR
# 0029). Its claim loop is woken when a job is queued (a notification on PostgreSQL) and,
# on SQLite, by any commit while a job runs, and then looks at once: this look is only the
# net for a wake-up that never came.
IDLE_PROBE_INTERVAL = 10.0


class Maintenance(Slots):
    """The worker's maintenance thread: everything on a timer."""

    def _maintenance_loop(self) -> None:
        cfg = self.config
        beat = HeartbeatPace(cfg.lease.heartbeat_interval)  # slower while idle (ADR 0029)
        next_reap = time.monotonic() + cfg.reap_interval
        next_tick = next_probe = next_dead = 0.0
        next_prune = time.monotonic() + self.pruner.interval
        next_service = [0.0] * len(self.services)
        running, hot_until = True, 0.0  # until the first probe says otherwise
        while not self._stopped.is_set():
            now = time.monotonic()
            try:
                self._enforce_deadlines()
                if self._activity:  # the claim loop saw work move: look soon (ADR 0025)
                    self._activity = False
                    hot_until = now + ACTIVITY_WINDOW
                    next_probe = min(next_probe, now)
                if now >= next_probe:
                    # Reap when the earliest lease runs out, not on the next fixed tick.
                    due = self.reaper.due_in()
                    running = due is not None
                    if due is None:
                        # No job runs anywhere: nothing to reap until one does; an idle
                        # worker looks again only every IDLE_PROBE_INTERVAL (idle cost),
                        # or soon after its claim loop saw a change (a job may start).
                        next_reap = math.inf
                        next_probe = hot_until if now < hot_until else \
                            now + max(cfg.reap_interval, IDLE_PROBE_INTERVAL)
                    else:
                        next_reap = min(next_reap, now + due)
                        next_probe = now + PROBE_INTERVAL
                if beat.due(now, holding=bool(self._running)):
                    beat.beaten(now, holding=self._heartbeat())
                if self.scheduler is not None and now >= next_tick:
                    self.scheduler.run_once()
                    next_tick = now + 1.0
                # Only a running job can have a dead owner (ADR 0025): idle, no look.
                if running and now >= next_dead:
                    dead = self.reaper.run_dead_once()
                    if dead.total:
                        self.observer.reaped(dead)
                    next_dead = now + DEAD_INTERVAL
                if now >= next_reap:
                    reaped = self.reaper.run_once()
                    if reaped.total:
                        self.observer.reaped(reaped)
                    next_reap = now + cfg.reap_interval
                if now >= next_prune:
                    pruned = self.pruner.run_once()
                    if pruned:
                        self.observer.pruned(pruned)
                    next_prune = now + self.pruner.interval
                # Kinds' periodic work (the workflow waker) after the leases are safe.
                for i, service in enumerate(self.services):
                    if now >= next_service[i]:
                        next_service[i] = now + service.interval
                        service.run_once()
            except StoreUnavailable as exc:
                log.warning("maintenance failed; retrying", worker=self.id, error=str(exc))
                beat.failed(now)
            except Exception as exc:
                log.error("maintenance error", worker=self.id, error=describe(exc), exc_info=exc)
            self._stopped.wait(0.05)

    def _heartbeat(self) -> bool:
        """Renew the leases held and record the worker; True if it held any."""
        with self._lock:
            entries = list(self._running.values())
        res = self.store.heartbeat(
            worker=self.id,
            leases=[(e.job.id, e.job.lease_token) for e in entries],
            lease_seconds=self.config.lease.seconds,
        )
        self.observer.heartbeat(self.id, len(entries))
        for e in entries:
            # Progress rides with the heartbeat: the latest value, once per beat (ADR 0016).
            latest = e.ctx.progress_state.take_unreported()
            if latest is not None and e.ctx._stream is not None:
                try:
                    e.ctx._stream.progress(latest.done, latest.total, latest.message)
                except Exception as exc:  # one job's progress never stops the others' beat
                    log.error("progress not written", job_id=e.job.id, error=describe(exc))
            if e.job.id in res.cancel_requested:
                log.info("cancelling job on request", job_id=e.job.id, worker=self.id)
                self._hard_stop(e, Outcome(e.job.id, e.job.lease_token, OutcomeKind.CANCELLED,
                                           self.id, error=_cancelled_info()))
            elif e.job.id in res.lost:
                # Someone else holds it now; stop work whose result could not be written.
                log.warning("lease lost", job_id=e.job.id, worker=self.id)
                e.ctx.cancelled.set()
        return bool(entries)

    def _enforce_deadlines(self) -> None:
        with self._lock:
            entries = list(self._running.values())
        for e in entries:
            if not e.begun:
                continue  # held ahead: its time starts when it begins (ADR 0017)
            if e.ctx.deadline.expired:
                exc = Timeout(f"task exceeded its timeout of {e.job.timeout}s")
            elif (stalled := e.ctx.progress_state.stalled()) is not None:
                exc = Timeout(stalled, detail={"stalled": True})  # ctx.watch_progress
            else:
                continue
            self._hard_stop(e, self._error_outcome(e.job, exc, e.runnable))


def _cancelled_info() -> ErrorInfo:
    return ErrorInfo(ErrorClass.CANCELLED, "cancelled by request")

