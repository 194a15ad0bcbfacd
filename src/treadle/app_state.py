"""What every part of the app shares: its store, clock, registries and plug-ins.

``Treadle`` (``app.py``) is split by concept, one module each: registration
(``registration.py``), submission (``submission.py``), job queries (``jobs.py``) and
plug-in wiring (``wiring.py``). They are mixins of the one ``Treadle`` object because
they share these fields and users call them all on ``app``; the fields are declared here
once so each part type-checks alone. ``Treadle.__init__`` sets them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from treadle.core.clock import Clock
from treadle.core.cron import CronSchedule
from treadle.core.job import JobKind
from treadle.egress import EgressPolicy
from treadle.executors.base import Executor
from treadle.executors.task import TaskExecutor
from treadle.kinds import JobKindPlugin
from treadle.observe import Observer
from treadle.store import Store
from treadle.tracing import Tracing
from treadle.worker.scheduler import Periodic

if TYPE_CHECKING:
    from treadle.app import Treadle
    from treadle.artifacts import ArtifactService, ArtifactStore
    from treadle.task import Task


class AppState:
    """The fields the app's parts share (set in ``Treadle.__init__``)."""

    url: str
    tracing: Tracing
    clock: Clock
    egress: EgressPolicy
    store: Store
    tasks: dict[str, Task[Any, Any]]
    periodics: list[Periodic]
    crons: list[CronSchedule]
    observer: Observer | None
    _plugins: dict[JobKind, JobKindPlugin]
    _legacy_executors: dict[JobKind, Executor]
    _task_executor: TaskExecutor | None
    _on_close: list[Callable[[], None]]
    _artifacts_source: str | ArtifactStore | None
    _artifacts: ArtifactService | None
    _artifacts_lock: threading.Lock
    artifacts_gc_interval: float

    @property
    def _app(self) -> Treadle:
        """This object as the whole app: the parts pass it on where a ``Treadle`` is taken
        (a plug-in's setup, a task, a handle) and call each other through it."""
        return cast("Treadle", self)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the app closes (extensions release what they started)."""
        self._on_close.append(callback)
