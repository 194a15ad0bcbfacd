"""Waking waiting workflows: the guarded ``waiting -> queued`` update (ADR 0009).

Three paths, one guarded statement (so a job wakes once however many paths fire):
- right after a job suspends, and right after one of its children finishes, the worker
  checks that one job (``on_finished``): the common case, no delay;
- ``send_event`` wakes the jobs waiting on the key in the event's own transaction;
- a sweep, run by every worker's maintenance loop, wakes whatever the first two missed:
  timers that came due, and wake-ups lost to a crash between a commit and its check.
"""

from __future__ import annotations

import json
from typing import Any

from treadle.core.job import Job, JobKind
from treadle.logs import get_logger
from treadle.store import Outcome, OutcomeKind
from treadle.workflows.db import Tx, WorkflowDb

log = get_logger("treadle.workflows")

_CHILD_DONE = frozenset({OutcomeKind.SUCCEEDED, OutcomeKind.FAILED, OutcomeKind.CANCELLED})


class Waker:
    def __init__(self, db: WorkflowDb, *, batch: int = 500, interval: float = 0.5) -> None:
        self.db = db
        self.batch = batch
        self.interval = interval  # as a worker Service: how late a due timer may fire

    def run_once(self) -> int:
        return self.sweep()

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
            self.check(job.id)
        elif outcome.kind in _CHILD_DONE and job.parent_id is not None:
            self.check(job.parent_id)
