"""``Workflows``: durable workflows as the job-kind plug-in for kind ``workflow``.

Everything the feature adds comes from here (ADR 0009): the executor, the SQL
(``treadle/workflows/sql``), the waker (a finish listener on every finished job and a sweep in
every worker), ``POST /v1/events``, the steps on the job page and ``treadle events``.
``@app.workflow`` registers it on first use, so a plain app needs no wiring at all.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from treadle.core.errors import ConfigurationError
from treadle.core.job import Job, JobKind
from treadle.kinds import JobKindPlugin
from treadle.store import Outcome
from treadle.workflows.db import SQL_PACKAGE
from treadle.workflows.service import WorkflowService

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from treadle.app import Treadle
    from treadle.executors.base import Executor
    from treadle.worker.worker import Service




class Workflows(JobKindPlugin):
    kind = JobKind.WORKFLOW
    name = "workflows"
    sql_package = SQL_PACKAGE
    cli_name = "events"

    def __init__(self) -> None:
        self._app: Treadle | None = None
        self._service: WorkflowService | None = None
        self._lock = threading.Lock()

    def setup(self, app: Treadle) -> None:
        self._app = app

    @property
    def service(self) -> WorkflowService:
        """Built on first use, over the app's store as it is then (the CLI may rebind an
        app's store to ``--db`` after the app module registered this plug-in)."""
        with self._lock:
            if self._service is None:
                if self._app is None:
                    raise ConfigurationError("Workflows is not registered: app.use(it)")
                self._service = WorkflowService(self._app)
            return self._service

    def executor(self, app: Treadle) -> Executor:
        return self.service.executor

    def on_finished(self, job: Job, outcome: Outcome) -> None:
        self.service.waker.on_finished(job, outcome)

    def services(self, app: Treadle) -> Sequence[Service]:
        return (self.service.waker,)

    def api_router(self, app: Treadle) -> APIRouter:
        from treadle.workflows.api import router

        return router

    def cli(self) -> typer.Typer:
        from treadle.workflows.cli import events_app

        return events_app
