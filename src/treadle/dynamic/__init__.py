"""Dynamic workers as durable jobs: stored sandboxed code, each run a job of kind ``code``.

The feature is the job-kind plug-in :class:`DynamicWorkers` (ADR 0008)::

    from treadle import Treadle
    from treadle.dynamic import DynamicWorkers

    app = Treadle("sqlite:///treadle.db")
    workers = app.use(DynamicWorkers()).registry
    w = workers.register("def handler(input, env):\\n    return input['x'] * 2", "python")
    job = workers.run(w.id, {"x": 21}, wait=10).job   # 42 once a worker ran it

Workers built from the app (``app.executors()``) then claim ``code`` jobs too. The engine
is :mod:`treadle.sandbox`; the storage is core migration 0003 (``treadle_dynamic_workers``,
``treadle_kv``) and this package's SQL. See docs/dynamic-workers.md and
docs/adr/0401-dynamic-workers-as-jobs.md.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from treadle.dynamic.executor import CODE_RETRY_POLICY, CodeExecutor, RunRequest, WorkerNotFound
from treadle.dynamic.plugin import DynamicWorkers
from treadle.dynamic.registry import (
    SANDBOX_SLACK_SECONDS,
    TASK_PREFIX,
    WorkerRegistry,
    as_language,
)
from treadle.dynamic.repo import DynamicRepo, DynamicWorker, StoreKV, open_repo

if TYPE_CHECKING:
    from treadle.app import Treadle
    from treadle.sandbox import SandboxManager

__all__ = [
    "CODE_RETRY_POLICY",
    "SANDBOX_SLACK_SECONDS",
    "TASK_PREFIX",
    "CodeExecutor",
    "DynamicRepo",
    "DynamicWorker",
    "DynamicWorkers",
    "RunRequest",
    "StoreKV",
    "WorkerNotFound",
    "WorkerRegistry",
    "as_language",
    "enable",
    "open_repo",
    "registry_of",
]


def enable(
    app: Treadle,
    manager: SandboxManager | None = None,
    *,
    queue: str = "default",
    retries: int = 2,
) -> WorkerRegistry:
    """Deprecated: ``app.use(DynamicWorkers(manager, queue=..., retries=...)).registry``.

    Kept for code written before job-kind plug-ins; idempotent as it always was (a second
    call returns the registry already attached; its manager and options stay).
    """
    warnings.warn(
        "treadle.dynamic.enable(app) is deprecated: use app.use(DynamicWorkers(...))",
        DeprecationWarning, stacklevel=2,
    )
    existing = app.find_plugin(DynamicWorkers)
    if existing is None:
        existing = app.use(DynamicWorkers(manager, queue=queue, retries=retries))
    return existing.registry


def registry_of(app: Treadle) -> WorkerRegistry | None:
    """The registry of the app's :class:`DynamicWorkers` plug-in, or None."""
    found = app.find_plugin(DynamicWorkers)
    return found.registry if found is not None else None
