"""Plug-in wiring: job-kind plug-ins, the executors and worker options they bring,
their migrations and schema checks, and the app's artifacts.

Everything that connects the app to what serves its kinds (``treadle.kinds``) and to
their tables, apart from what a producer calls.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, TypeVar

from treadle.app_state import AppState
from treadle.artifacts.gc import artifact_services
from treadle.artifacts.records import SQL_PACKAGE as ARTIFACTS_SQL
from treadle.artifacts.records import TRACK as ARTIFACTS_TRACK
from treadle.core.errors import ConfigurationError
from treadle.core.job import JobKind
from treadle.executors.base import Executor
from treadle.executors.task import TaskExecutor
from treadle.kinds import JobKindPlugin, builtin_plugins
from treadle.streams.repo import SQL_PACKAGE as STREAMS_SQL
from treadle.streams.repo import TRACK as STREAMS_TRACK

if TYPE_CHECKING:
    from treadle.artifacts import Artifact, ArtifactService, ArtifactStore
    from treadle.dynamic.registry import WorkerRegistry

PluginT = TypeVar("PluginT", bound=JobKindPlugin)


class Wiring(AppState):
    """The app's plug-in wiring: kinds, executors, migrations, artifacts."""

    def use(self, plugin: PluginT) -> PluginT:
        """Register a job-kind plug-in (see :mod:`treadle.kinds`); returns it.

        Idempotent for the same object; another plug-in for a kind (or a name) already
        served is refused, as is anything that is not a valid :class:`JobKindPlugin`.
        """
        if not isinstance(plugin, JobKindPlugin):
            raise ConfigurationError(
                f"app.use() takes a treadle.kinds.JobKindPlugin, got {type(plugin).__name__}"
            )
        try:
            type(plugin).check_declaration()
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        existing = self._plugins.get(plugin.kind)
        if existing is plugin:
            return plugin
        if existing is not None:
            raise ConfigurationError(
                f"jobs of kind {plugin.kind.value!r} are already served by {existing!r}"
            )
        if any(p.name == plugin.name for p in self._plugins.values()):
            raise ConfigurationError(f"a plug-in named {plugin.name!r} is already registered")
        if plugin.kind in self._legacy_executors:
            raise ConfigurationError(
                f"kind {plugin.kind.value!r} already has an executor in app.extra_executors"
            )
        plugin.setup(self._app)
        self._plugins[plugin.kind] = plugin
        self.on_close(plugin.close)
        return plugin

    @property
    def plugins(self) -> tuple[JobKindPlugin, ...]:
        """The registered plug-ins, in registration order."""
        return tuple(self._plugins.values())

    def plugin_for(self, kind: JobKind) -> JobKindPlugin | None:
        return self._plugins.get(kind)

    def plugin(self, cls: type[PluginT]) -> PluginT:
        """The registered plug-in of class ``cls`` (typed), or ConfigurationError."""
        found = self.find_plugin(cls)
        if found is None:
            raise ConfigurationError(
                f"{cls.__name__} is not registered on this app: call app.use({cls.__name__}())"
            )
        return found

    def find_plugin(self, cls: type[PluginT]) -> PluginT | None:
        for p in self._plugins.values():
            if isinstance(p, cls):
                return p
        return None

    def worker_options(self) -> dict[str, Any]:
        """What the plug-ins add to a :class:`~treadle.worker.Worker` of this app: finish
        listeners (``on_finished``) and periodic ``services`` (keyword arguments)."""
        plugins = list(self._plugins.values())
        return {
            "on_finished": [p.on_finished for p in plugins],
            "services": [*(s for p in plugins for s in p.services(self._app)),
                         *artifact_services(self._app)],
            "tracing": self.tracing,
        }

    def worker_hooks(self) -> dict[str, Any]:
        """Deprecated name of :meth:`worker_options` ("hook" is an inbound webhook)."""
        warnings.warn("app.worker_hooks() is deprecated; use app.worker_options()",
                      DeprecationWarning, stacklevel=2)
        return self.worker_options()

    def executors(self) -> dict[JobKind, Executor]:
        """One executor per kind this app can run: ``task`` plus every plug-in's.

        A worker built from them claims only these kinds."""
        if self._task_executor is None:
            self._task_executor = TaskExecutor(self._app)
        out: dict[JobKind, Executor] = {JobKind.TASK: self._task_executor}
        out.update(self._legacy_executors)
        for kind, plugin in self._plugins.items():
            out[kind] = plugin.executor(self._app)
        return out

    @property
    def extra_executors(self) -> dict[JobKind, Executor]:
        """Deprecated: the plug-ins' executors (use :meth:`executors` or :meth:`use`)."""
        return {k: e for k, e in self.executors().items() if k is not JobKind.TASK}

    @extra_executors.setter
    def extra_executors(self, value: dict[JobKind, Executor]) -> None:
        # Deprecated path for executors without a plug-in; kept for code written before
        # app.use() existed. Such kinds get no SQL, routes, pages or commands.
        self._legacy_executors = {k: v for k, v in value.items() if k not in self._plugins}

    @property
    def dynamic_workers(self) -> WorkerRegistry:
        """The dynamic-worker registry: register stored code, run it as ``code`` jobs.

        ConfigurationError unless the app uses ``DynamicWorkers`` (``app.use(...)``)."""
        from treadle.dynamic.plugin import DynamicWorkers

        return self.plugin(DynamicWorkers).registry

    @property
    def workers(self) -> WorkerRegistry | None:
        """Deprecated name of :attr:`dynamic_workers` (None when not registered): a
        "worker" is the process that runs jobs (ADR 0023)."""
        from treadle.dynamic.plugin import DynamicWorkers

        warnings.warn("app.workers is deprecated; use app.dynamic_workers",
                      DeprecationWarning, stacklevel=2)
        found = self.find_plugin(DynamicWorkers)
        return found.registry if found is not None else None

    def migrate(self) -> list[int]:
        """Apply the core migrations, then the plug-ins' own; returns the core versions.

        The plug-ins are this app's and the built-in kinds' (``treadle.kinds``), registered
        or not: a database is migrated for the installation, so a process that serves more
        kinds than the one that migrated (``treadle worker`` after ``app.migrate()``) finds
        its tables."""
        applied = self.store.migrate()
        self.migrate_plugins()
        return applied

    def migrate_plugins(self) -> dict[str, list[int]]:
        """Apply the plug-ins' own migrations (after the core's); the versions applied now,
        by plug-in name."""
        tracks: dict[str, str | None] = {ARTIFACTS_TRACK: ARTIFACTS_SQL}  # every kind's files
        tracks.update({p.name: p.sql_package for p in builtin_plugins()})
        tracks.update({p.name: p.sql_package for p in self._plugins.values()})
        tracks[STREAMS_TRACK] = STREAMS_SQL  # live job streams' own track (ADR 0011)
        return {name: self.store.migrate_plugin(name, sql_package)
                for name, sql_package in tracks.items() if sql_package is not None}

    def check_schema(self) -> None:
        """Refuse a database that is behind (run ``treadle migrate``) or ahead of the code,
        for the core schema and every registered plug-in's."""
        self.store.check_schema()
        self.store.check_plugin_schema(ARTIFACTS_TRACK, ARTIFACTS_SQL)
        for plugin in self._plugins.values():
            if plugin.sql_package is not None:
                self.store.check_plugin_schema(plugin.name, plugin.sql_package)

    # -- artifacts -------------------------------------------------------------

    @property
    def artifacts(self) -> ArtifactService:
        """The app's artifacts (``treadle.artifacts``): built on first use."""
        with self._artifacts_lock:
            if self._artifacts is None:
                from treadle.artifacts import (
                    ArtifactService,
                    default_artifacts_url,
                    open_artifact_store,
                )

                source = self._artifacts_source

                def backend() -> ArtifactStore:
                    if source is None:
                        return open_artifact_store(default_artifacts_url(self.url))
                    return open_artifact_store(source) if isinstance(source, str) else source

                self._artifacts = ArtifactService(self.store, backend)
                self.on_close(self._artifacts.close)
            return self._artifacts

    def configure_artifacts(self, artifacts: str | ArtifactStore) -> None:
        """Where artifacts live (``file:///dir``, ``s3://bucket/prefix`` or a store); the
        CLI calls it with ``TREADLE_ARTIFACTS_URL``. Only before the first use."""
        with self._artifacts_lock:
            if self._artifacts is not None:
                raise ConfigurationError("artifacts are in use: configure them before")
            self._artifacts_source = artifacts

    @property
    def artifacts_configured(self) -> bool:
        """Whether a store was chosen (else: the directory beside the SQLite file)."""
        return self._artifacts_source is not None

    def job_artifacts(self, job_id: int, *, tenant: str | None = None) -> list[Artifact]:
        """The files job ``job_id`` produced, oldest first."""
        from treadle.jobs import checked_job_id

        return self.artifacts.for_job(checked_job_id(job_id, tenant), tenant=tenant)

