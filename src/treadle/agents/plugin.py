"""``Agents``: durable LLM agents as the job-kind plug-in for kind ``agent``.

It brings the executor (the agent loop on the workflow engine's step log, so it needs
and registers :class:`~treadle.workflows.plugin.Workflows`), its own SQL (the spending
ledger, ``treadle/agents/sql``), ``GET /v1/agents/...`` routes, the run page and the
spend panel in the UI, and ``treadle agents``. ``app.agent(...)`` registers it on first
use.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from treadle.agents.executor import AgentExecutor
from treadle.agents.ledger import SQL_PACKAGE, Ledger
from treadle.core.errors import ConfigurationError
from treadle.core.job import JobKind
from treadle.kinds import JobKindPlugin

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from treadle.app import Treadle
    from treadle.executors.base import Executor
    from treadle.kinds import UiPages


class Agents(JobKindPlugin):
    kind = JobKind.AGENT
    name = "agents"
    sql_package = SQL_PACKAGE
    cli_name = "agents"

    def __init__(self) -> None:
        self._app: Treadle | None = None
        self._executor: AgentExecutor | None = None
        self._ledger: Ledger | None = None
        self._lock = threading.Lock()

    def setup(self, app: Treadle) -> None:
        from treadle.workflows.plugin import Workflows

        self._app = app
        if app.find_plugin(Workflows) is None:  # the step log lives in its tables
            app.use(Workflows())

    def _bound(self) -> Treadle:
        if self._app is None:
            raise ConfigurationError("Agents is not registered: app.use(it)")
        return self._app

    @property
    def ledger(self) -> Ledger:
        """Built on first use, over the app's store as it is then (the CLI may rebind)."""
        with self._lock:
            if self._ledger is None:
                self._ledger = Ledger(self._bound().store)
            return self._ledger

    def executor(self, app: Treadle) -> Executor:
        from treadle.workflows.plugin import Workflows

        ledger = self.ledger
        with self._lock:
            if self._executor is None:
                self._executor = AgentExecutor(app, app.plugin(Workflows).service.db, ledger)
            return self._executor

    def api_router(self, app: Treadle) -> APIRouter:
        from treadle.agents.api import router

        return router

    def ui_pages(self, app: Treadle) -> UiPages | None:
        from treadle.agents.ui import pages

        return pages()

    def cli(self) -> typer.Typer:
        from treadle.agents.cli import agents_app

        return agents_app

    def close(self) -> None:
        """Close the model adapters the app's agents built from model strings (an SDK
        client holds a connection pool); adapters passed in are their owners' to close."""
        from treadle.agents.agent import Agent

        if self._app is None:
            return
        for task in list(self._app.tasks.values()):
            if isinstance(task, Agent) and task.owns_adapter:
                close = getattr(task.spec.adapter, "close", None)
                if close is not None:
                    close()
