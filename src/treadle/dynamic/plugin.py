"""``DynamicWorkers``: dynamic workers as the job-kind plug-in for kind ``code``.

Everything the feature adds to an app comes from here (ADR 0008): the executor, the SQL
(``treadle/dynamic/sql``), the ``/v1/dynamic-workers`` routes, the ``/dynamic-workers/new``
page and the ``treadle dynamic`` command. ``app.use(DynamicWorkers())`` is the only wiring.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from treadle.core.errors import ConfigurationError
from treadle.core.job import DEFAULT_QUEUE, JobKind
from treadle.dynamic.executor import CodeExecutor
from treadle.dynamic.registry import WorkerRegistry
from treadle.dynamic.repo import SQL_PACKAGE, open_repo
from treadle.kinds import JobKindPlugin, RenamedPrefix, UiPages

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from treadle.app import Treadle
    from treadle.executors.base import Executor
    from treadle.sandbox import SandboxManager


class DynamicWorkers(JobKindPlugin):
    """Stored sandboxed code (JavaScript, Python) whose runs are jobs of kind ``code``.

    ``manager`` is used as given (and not closed by the plug-in); without one, a
    :class:`~treadle.sandbox.SandboxManager` starts on the first run, so only processes
    that run code spawn sandboxes. ``queue`` and ``retries`` are the defaults of a run.
    """

    kind = JobKind.CODE
    name = "dynamic"
    sql_package = SQL_PACKAGE
    # "worker" is the process that runs jobs (`treadle worker`); this kind's commands are
    # `treadle dynamic ...` (docs/glossary.md). `treadle workers` was their first name.
    cli_name = "dynamic"
    cli_old_names = ("workers",)
    # `/v1/workers` was this kind's API prefix; it still answers, deprecated (ADR 0023).
    api_old_prefixes = (RenamedPrefix("/v1/workers", "/v1/dynamic-workers",
                                      since=datetime(2026, 11, 30, tzinfo=UTC)),)

    def __init__(
        self,
        manager: SandboxManager | None = None,
        *,
        queue: str = DEFAULT_QUEUE,
        retries: int = 2,
    ) -> None:
        self._manager = manager
        self._queue = queue
        self._retries = retries
        self._app: Treadle | None = None
        self._registry: WorkerRegistry | None = None
        self._lock = threading.Lock()

    def setup(self, app: Treadle) -> None:
        self._app = app

    @property
    def registry(self) -> WorkerRegistry:
        """Register and run dynamic workers (also reached as ``app.dynamic_workers``).

        Built on first use, over the app's store as it is then (the CLI may rebind an
        app's store to ``--db`` after the app module registered this plug-in)."""
        with self._lock:
            if self._registry is None:
                if self._app is None:
                    raise ConfigurationError("DynamicWorkers is not registered: app.use(it)")
                app = self._app
                repo = open_repo(app.store)
                # The app's egress policy is read per run: the CLI may set it after import.
                executor = CodeExecutor(repo, self._manager, egress=lambda: app.egress)
                self._registry = WorkerRegistry(
                    app, repo, executor, queue=self._queue, retries=self._retries
                )
            return self._registry

    def executor(self, app: Treadle) -> Executor:
        return self.registry.executor

    def api_router(self, app: Treadle) -> APIRouter:
        from treadle.dynamic.api import router

        return router

    def ui_pages(self, app: Treadle) -> UiPages:
        from treadle.dynamic import ui

        return UiPages(register=ui.register, templates=Path(__file__).parent / "templates",
                       nav=(("/dynamic-workers/new", "Dynamic workers"),))

    def cli(self) -> typer.Typer:
        from treadle.dynamic.cli import workers_app

        return workers_app

    def close(self) -> None:
        with self._lock:
            registry = self._registry
        if registry is not None:
            registry.close()
