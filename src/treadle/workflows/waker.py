"""Waking waiting workflows: the guarded ``waiting -> queued`` update (ADR 0009).

Three paths, one guarded statement (so a job wakes once however many paths fire):
- right after a job suspends, and right after one of its children finishes, the worker
  checks that one job (``on_finished``): the common case, no delay;
- ``send_event`` wakes the jobs waiting on the key in the event's own transaction;
- a sweep, run by every worker's maintenance loop, wakes whatever the first two missed:
  timers that came due, and wake-ups lost to a crash between a commit and its check.

The sweep is paced, not periodic (issue 13, ADR 0025): it reads when the earliest timer of
a waiting workflow comes due and sleeps until then; a wait this process writes (a job
suspending here) makes it sweep again at once; with nothing due it backs off from
``interval`` to ``idle_cap`` (the safety net for wake-ups lost to a crash).
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from typing import Any

from treadle.core.errors import ConfigurationError
from treadle.core.job import Job, JobKind
from treadle.logs import get_logger
from treadle.store import Outcome, OutcomeKind
from treadle.workflows.db import Tx, WorkflowDb

log = get_logger("treadle.workflows")

_CHILD_DONE = frozenset({OutcomeKind.SUCCEEDED, OutcomeKind.FAILED, OutcomeKind.CANCELLED})


class Waker:
    def __init__(self, db: WorkflowDb, *, batch: int = 500, interval: float = 0.5,
                 idle_cap: float = 30.0) -> None:
        if interval <= 0 or idle_cap < interval:
            raise ConfigurationError("waker interval must be positive and <= idle_cap")
        self.db = db
        self.batch = batch
        self.interval = interval  # as a worker Service: how late a due timer may fire
        self.idle_cap = idle_cap  # the longest sleep with nothing due (lost wake-ups)
        self._lock = threading.Lock()
        self._sweep_at: datetime | None = None  # store clock; None: sweep on the next call
        self._backoff = interval
        self._pokes = 0

    def poke(self) -> None:
        """A wait was written here: sweep on the next call (it may hold a new timer)."""
        with self._lock:
            self._pokes += 1
            self._sweep_at = None

    def run_once(self) -> int:
        """The worker calls this every ``interval``; it sweeps only when a timer may be
        due, a poke came, or the idle back-off ran out. Returns how many it woke."""
        now = self.db.now()
        with self._lock:
            if self._sweep_at is not None and now < self._sweep_at:
                return 0
            pokes = self._pokes
        woken = self.sweep()
        rows = self.db.read("next_wake", {})
        timer = self.db.codec.opt_ts(rows[0]["at"]) if rows else None
        with self._lock:
            # Back off while sweeps find nothing; back to ``interval`` once one wakes.
            self._backoff = self.interval if woken else min(self._backoff * 2, self.idle_cap)
            at = now + timedelta(seconds=self._backoff)
            if timer is not None:
                at = min(at, timer)
            # A poke during the sweep may be for a wait written after it read: keep it.
            self._sweep_at = at if self._pokes == pokes else None
        return woken

    def _params(self, job_id: int, cause: str) -> dict[str, Any]:
        return {"id": job_id, "now": self.db.ts_in(self.db.now()),
                "detail": json.dumps({"cause": cause})}

    def wake(self, job_id: int, cause: str, tx: Tx | None = None) -> bool:
        """``waiting -> queued`` (event ``woken``); False if it was not waiting."""
        params = self._params(job_id, cause)
        rows = tx.op("wake", params) if tx is not None else self.db.op("wake", params)
        return bool(rows)

    def _due(self, job_id: int | None, limit: int) -> list[tuple[int, str]]:
        rows = self.db.read("due", {"id": job_id, "now": self.db.ts_in(self.db.now()),
                                    "limit": limit})
        return [(int(r["id"]), str(r["cause"])) for r in rows]

    def check(self, job_id: int) -> bool:
        """Wake ``job_id`` if it waits and its condition already holds."""
        return any(self.wake(jid, cause) for jid, cause in self._due(job_id, 1))

    def sweep(self) -> int:
        """Wake every waiting workflow whose condition holds; returns how many."""
        woken = 0
        while True:
            due = self._due(None, self.batch)
            woken += sum(1 for jid, cause in due if self.wake(jid, cause))
            if len(due) < self.batch:
                break
        if woken:
            log.info("woke waiting workflows", count=woken)
        return woken

    def on_finished(self, job: Job, outcome: Outcome) -> None:
        """Finish listener, after an outcome committed: the suspended job itself may be due
        already (an event or every child finished before it suspended); a finished
        child may be the one its parent waits for."""
        if outcome.kind is OutcomeKind.WAITING and job.kind is JobKind.WORKFLOW:
            if not self.check(job.id):
                self.poke()  # its timer, if any, is new to the paced sweep
        elif outcome.kind in _CHILD_DONE and job.parent_id is not None:
            self.check(job.parent_id)
