"""The library entry point: ``Treadle``, tasks and job handles (docs/glossary.md: task, job).

``Treadle`` is put together from one mixin per concept: registration
(``registration.py``), submission (``submission.py``), job queries and handles
(``jobs.py``) and plug-in wiring (``wiring.py``); tasks and their options are in
``task.py``. This module keeps the constructor and the lifecycle, and re-exports the
names that have always been importable from here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from treadle.core.clock import SYSTEM_CLOCK, Clock
from treadle.core.cron import CronSchedule
from treadle.core.job import JobKind
from treadle.egress import EgressPolicy
from treadle.executors.base import Executor
from treadle.executors.task import TaskExecutor
from treadle.jobs import JobHandle, JobQueries, WaitTimeout
from treadle.kinds import JobKindPlugin
from treadle.observe import Observer
from treadle.registration import Registration
from treadle.store import Store, open_store
from treadle.submission import Submission
from treadle.task import MAX_PAYLOAD_BYTES, KeySpec, Task, TaskOptions, check_payload
from treadle.tracing import NULL_TRACING, Tracing
from treadle.wiring import Wiring
from treadle.worker.scheduler import Periodic

if TYPE_CHECKING:
    from treadle.artifacts import ArtifactService, ArtifactStore

DEFAULT_URL = "sqlite:///treadle.db"


class Treadle(Registration, Submission, JobQueries, Wiring):
    """The application: a store plus a registry of tasks.

    ``Treadle("sqlite:///treadle.db")`` (the embedded default) or
    ``Treadle("postgresql://user@host/db")``.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        clock: Clock = SYSTEM_CLOCK,
        store: Store | None = None,
        egress: EgressPolicy | None = None,
        artifacts: str | ArtifactStore | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.url = url
        # Spans of submissions and of this app's workers (ADR 0021): a no-op unless given
        # (``treadle.tracing.otel_tracing()``, or the CLI's --otel).
        self.tracing: Tracing = tracing or NULL_TRACING
        self.clock = clock
        # Where env.fetch and callbacks may connect: public addresses unless an operator
        # allowed private ranges (the CLI reads TREADLE_EGRESS_ALLOW; ADR 0305).
        self.egress = egress or EgressPolicy()
        self.store: Store = store if store is not None else open_store(url, clock=clock)
        self.tasks: dict[str, Task[Any, Any]] = {}
        self.periodics: list[Periodic] = []
        self.crons: list[CronSchedule] = []
        self.observer: Observer | None = None  # metrics, set by the API server or CLI
        self._plugins: dict[JobKind, JobKindPlugin] = {}
        self._legacy_executors: dict[JobKind, Executor] = {}
        self._task_executor: TaskExecutor | None = None
        self._on_close: list[Callable[[], None]] = []
        self._closed = False
        # Artifacts (ADR 0009): built on first use; None -> a directory beside SQLite.
        self._artifacts_source = artifacts
        self._artifacts: ArtifactService | None = None
        self._artifacts_lock = threading.Lock()
        # How often each worker collects unreferenced artifact objects (ADR 0016).
        self.artifacts_gc_interval = 60.0

    def __repr__(self) -> str:
        return f"<Treadle {self.url!r} tasks={sorted(self.tasks)}>"

    def close(self) -> None:
        """Run the close callbacks, then close the store; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        for callback in reversed(self._on_close):
            callback()
        self._on_close.clear()
        self.store.close()

    def __enter__(self) -> Treadle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



__all__ = [
    "DEFAULT_URL",
    "MAX_PAYLOAD_BYTES",
    "JobHandle",
    "KeySpec",
    "Task",
    "TaskOptions",
    "Treadle",
    "WaitTimeout",
    "check_payload",
]
