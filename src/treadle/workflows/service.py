"""What one app knows of workflows: its database access, waker and executor."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from treadle.core.job import DEFAULT_TENANT
from treadle.workflows.db import WorkflowDb
from treadle.workflows.events import send_event
from treadle.workflows.executor import WorkflowExecutor
from treadle.workflows.model import Step
from treadle.workflows.steplog import steps_from_rows
from treadle.workflows.waker import Waker

if TYPE_CHECKING:
    from treadle.app import Treadle

SWEEP_SECONDS = 0.5  # how late a timer may fire at worst (the sweep's period)


class WorkflowService:
    def __init__(self, app: Treadle) -> None:
        self.app = app
        self.db = WorkflowDb(app.store)
        self.waker = Waker(self.db)
        self.executor = WorkflowExecutor(app, self.db)

    def send_event(self, key: str, payload: Any = None, *,
                   tenant: str = DEFAULT_TENANT) -> tuple[int, list[int]]:
        return send_event(self.db, self.waker, key, payload, tenant=tenant)

    def steps(self, job_id: int) -> list[Step]:
        """The job's steps in order, each with the ids of the child jobs it created."""
        steps = steps_from_rows(self.db, self.db.read("steps", {"job_id": job_id}))
        kids: dict[int, list[int]] = {}
        for r in self.db.read("links", {"job_id": job_id}):
            kids.setdefault(int(r["seq"]), []).append(int(r["child_id"]))
        return [replace(s, children=tuple(kids.get(s.seq, ()))) for s in steps]
