"""Dynamic workers as durable jobs: stored sandboxed code, each run a job of kind ``code``.

``enable(app)`` attaches the feature to a :class:`treadle.Treadle` app::

    from treadle import Treadle
    from treadle import dynamic

    app = Treadle("sqlite:///treadle.db")
    workers = dynamic.enable(app)              # also reachable as app.workers
    w = workers.register("def handler(input, env):\\n    return input['x'] * 2", "python")
    job = workers.run(w.id, {"x": 21}, wait=10).job   # 42 once a worker ran it

Workers built from the app afterwards (``treadle.cli.run.executors_for``) pick up the
code executor from ``app.extra_executors``. The engine is :mod:`treadle.sandbox`; the
storage is migration 0003 (``treadle_dynamic_workers``, ``treadle_kv``). See
docs/dynamic-workers.md and docs/adr/0401-dynamic-workers-as-jobs.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treadle.core.job import JobKind
from treadle.dynamic.executor import CODE_RETRY_POLICY, CodeExecutor, RunRequest, WorkerNotFound
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
    """Attach dynamic workers to ``app``: sets ``app.workers`` and the ``code`` executor.

    Idempotent: a second call returns the registry already attached (``manager`` and the
    options of the first call stay). Without ``manager`` the sandboxes are started on the
    first run, only in processes that run code; ``app.workers.close()`` stops them.
    """
    existing = registry_of(app)
    if existing is not None:
        return existing
    repo = open_repo(app.store)
    executor = CodeExecutor(repo, manager, egress=lambda: app.egress)
    registry = WorkerRegistry(app, repo, executor, queue=queue, retries=retries)
    app.workers = registry
    app.extra_executors = {**app.extra_executors, JobKind.CODE: executor}
    app.on_close(registry.close)
    return registry


def registry_of(app: Treadle) -> WorkerRegistry | None:
    """``app.workers`` when dynamic workers are enabled on ``app``, else None."""
    found = getattr(app, "workers", None)
    return found if isinstance(found, WorkerRegistry) else None
