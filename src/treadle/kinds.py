"""Job kinds as plug-ins: one object brings a kind's executor, SQL, API, UI and CLI.

A kind of job other than ``task`` (``code`` today; ``workflow`` next) is a subclass of
:class:`JobKindPlugin`, registered once on the app::

    app = Treadle(url)
    app.use(DynamicWorkers())          # typed, idempotent, validated here

From then on everything that serves the app finds the kind there: workers claim only the
kinds they have an executor for (``app.executors()``), ``app.migrate()`` applies the
kind's own numbered migrations, the API includes its router, the UI its pages, and the
``treadle`` command its sub-command. See docs/adr/0008-job-kinds-as-plugins.md.

A plug-in's SQL lives in its own package (``sql_package``) with one folder per backend::

    <sql_package>/sqlite/queries.sql            named queries (``-- name: ...``)
    <sql_package>/sqlite/migrations/0001_*.sql  its own numbered, immutable migrations
    <sql_package>/postgres/...                  the same for PostgreSQL

Run the queries with :meth:`treadle.store.extension.ExtensionSql.of_package`, and write
rows together with new jobs in one :meth:`treadle.store.Store.transaction`.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from treadle.core.job import JobKind

if TYPE_CHECKING:
    import typer
    from fastapi import APIRouter

    from treadle.app import Treadle
    from treadle.core.job import Job
    from treadle.executors.base import Executor
    from treadle.store import Outcome
    from treadle.ui.web import UIContext
    from treadle.worker.worker import Service

__all__ = ["JobKindPlugin", "RenamedPrefix", "UiPages", "builtin_plugins", "use_builtin"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


@dataclass(frozen=True)
class RenamedPrefix:
    """An earlier prefix of a plug-in's API paths, still served (``treadle.api.renamed``)."""

    old: str
    new: str
    since: datetime  # when the old prefix was deprecated (the Deprecation header's date)

    def __post_init__(self) -> None:
        for p in (self.old, self.new):
            if not p.startswith("/") or p.endswith("/"):
                raise ValueError(f"a renamed API prefix starts with '/' and does not end "
                                 f"with one, got {p!r}")
        if self.since.tzinfo is None:
            raise ValueError("RenamedPrefix.since must be timezone-aware")

    def rewrite(self, path: str) -> str | None:
        """``path`` under the new prefix, or None when it is not under the old one (a
        prefix matches whole segments: ``/v1/workersX`` is not under ``/v1/workers``)."""
        if path == self.old or path.startswith(self.old + "/"):
            return self.new + path[len(self.old):]
        return None


@dataclass(frozen=True)
class UiPages:
    """A plug-in's pages in the web UI.

    ``register(router, ctx)`` adds its routes; ``templates`` is a folder searched after
    the UI's own (so a plug-in's pages can extend ``base.html``); ``nav`` adds
    ``(href, label)`` entries to the main menu; ``dashboard(ctx, user)`` returns a
    ``(template, context)`` panel shown on the dashboard.
    """

    register: Callable[[APIRouter, UIContext], None]
    templates: Path | None = None
    nav: Sequence[tuple[str, str]] = field(default_factory=tuple)
    dashboard: Callable[[UIContext, Any], tuple[str, Mapping[str, Any]]] | None = None


class JobKindPlugin(abc.ABC):
    """One kind of job, as a plug-in. Subclass it; override only what the kind has.

    Class attributes: ``kind`` (the :class:`JobKind` whose jobs it runs), ``name`` (unique
    among plug-ins; names its migration track and is a valid identifier), ``sql_package``
    (dotted package holding ``sqlite/`` and ``postgres/`` SQL folders, or None) and
    ``cli_name`` (its ``treadle`` sub-command, or None) and ``cli_old_names`` (earlier
    names of that sub-command, still accepted, hidden, with a deprecation warning), and
    ``api_old_prefixes`` (earlier prefixes of its API paths, still served, each answer
    with a ``Deprecation`` header; ADR 0023).
    """

    kind: ClassVar[JobKind]
    name: ClassVar[str]
    sql_package: ClassVar[str | None] = None
    cli_name: ClassVar[str | None] = None
    cli_old_names: ClassVar[tuple[str, ...]] = ()
    api_old_prefixes: ClassVar[tuple[RenamedPrefix, ...]] = ()

    def setup(self, app: Treadle) -> None:  # noqa: B027 - optional, empty on purpose
        """Called once by ``app.use(self)``; bind to the app here (start nothing costly)."""

    @abc.abstractmethod
    def executor(self, app: Treadle) -> Executor:
        """The executor of this kind's jobs (the same object on every call)."""

    def api_router(self, app: Treadle) -> APIRouter | None:
        """Routes for the HTTP API (included by ``treadle.api.create_app``)."""
        return None

    def ui_pages(self, app: Treadle) -> UiPages | None:
        """Pages for the web UI (mounted by ``treadle.ui.mount``)."""
        return None

    def cli(self) -> typer.Typer | None:
        """A ``treadle <cli_name>`` sub-app. Built before any app is loaded: commands
        load theirs (``treadle.cli.common.load_app``) and look the plug-in up there."""
        return None

    def on_finished(self, job: Job, outcome: Outcome) -> None:  # noqa: B027 - optional
        """Called by a worker after it committed the outcome of any job (of any kind): a
        kind may react to others' jobs ending (a workflow waits for its child tasks)."""

    def services(self, app: Treadle) -> Sequence[Service]:
        """Periodic maintenance every worker of the app runs (a workflow's wake-up sweep)."""
        return ()

    def close(self) -> None:  # noqa: B027 - optional, empty on purpose
        """Release what the plug-in started (called when the app closes)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} kind={self.kind.value!r}>"

    @classmethod
    def check_declaration(cls) -> None:
        """Raise ValueError if the class attributes are not a valid plug-in declaration."""
        kind = getattr(cls, "kind", None)
        if not isinstance(kind, JobKind):
            raise ValueError(f"{cls.__name__}.kind must be a JobKind, got {kind!r}")
        if kind is JobKind.TASK:
            raise ValueError("kind 'task' is built in; a plug-in serves another kind")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{cls.__name__}.name must match {_NAME.pattern}, got {name!r}")


def builtin_plugins() -> list[JobKindPlugin]:
    """Fresh instances of the kinds that ship with Treadle (what ``treadle`` serves)."""
    from treadle.dynamic.plugin import DynamicWorkers
    from treadle.workflows.plugin import Workflows

    plugins: list[JobKindPlugin] = [DynamicWorkers(), Workflows()]
    try:  # agents need the agents extra (pydantic); without it the kind is not served
        from treadle.agents.plugin import Agents
    except ImportError:
        return plugins
    return [*plugins, Agents()]


def use_builtin(app: Treadle) -> Treadle:
    """Register the built-in kinds the app does not serve yet (the CLI's composition).

    An app that registered its own plug-in for a kind (say ``DynamicWorkers(manager)``)
    keeps it."""
    for plugin in builtin_plugins():
        if app.plugin_for(plugin.kind) is None:
            app.use(plugin)
    return app
