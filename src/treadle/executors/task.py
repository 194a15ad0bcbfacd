"""Runs jobs of kind ``task``: registered Python functions, sync or ``async def``."""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from treadle.context import JobContext
from treadle.core.errors import InvalidInput, Permanent
from treadle.core.job import Job
from treadle.executors.base import Runnable

if TYPE_CHECKING:
    from treadle.app import Task, Treadle
    from treadle.artifacts.context import JobArtifacts


_MAX_KEY_SETS = 64  # remembered per task


class TaskExecutor:
    def __init__(self, app: Treadle) -> None:
        self.app = app
        self._signatures: dict[str, inspect.Signature] = {}
        # Payload key sets already bound to each task's signature: whether keyword
        # arguments fit depends on their names only, so a drain of one task binds once
        # instead of once per job (issue 13). Bounded: payloads with ever new key sets.
        self._fits: dict[str, set[frozenset[str]]] = {}

    def prepare(self, job: Job) -> Runnable:
        task = self.app.tasks.get(job.task)
        if task is None:
            raise Permanent(
                f"no task named {job.task!r} is registered in this worker",
                detail={"task": job.task, "known": sorted(self.app.tasks)},
            )
        kwargs = self._bind(task, job)
        opts = task.options
        common: dict[str, Any] = {
            "retry_policy": opts.retry_policy,
            "error_overrides": opts.error_overrides,
            "default_error_class": opts.default_error_class,
        }
        if task.is_async:

            async def acall(ctx: JobContext) -> Any:
                ctx.artifacts_factory = self.artifacts_for
                return await task.fn(**_with_ctx(kwargs, ctx, opts.pass_context))

            return Runnable(acall=acall, **common)

        def call(ctx: JobContext) -> Any:
            ctx.artifacts_factory = self.artifacts_for
            return task.fn(**_with_ctx(kwargs, ctx, opts.pass_context))

        return Runnable(call=call, **common)

    def artifacts_for(self, job: Job) -> JobArtifacts:
        from treadle.artifacts.context import JobArtifacts

        return JobArtifacts(self.app.artifacts, job)

    def _bind(self, task: Task[Any, Any], job: Job) -> dict[str, Any]:
        """Check the payload fits the function before running it: a mismatch is bad input."""
        kwargs = dict(job.payload)
        names = frozenset(kwargs)
        fits = self._fits.get(task.name)
        if fits is not None and names in fits:
            return kwargs
        sig = self._signatures.get(task.name)
        if sig is None:
            sig = self._signatures[task.name] = inspect.signature(task.fn)
        probe = dict(kwargs)
        if task.options.pass_context:
            probe["ctx"] = None
        try:
            sig.bind(**probe)
        except TypeError as exc:
            raise InvalidInput(
                f"payload does not match task {task.name!r}: {exc}",
                detail={"payload_keys": sorted(kwargs)},
            ) from None
        fits = self._fits.setdefault(task.name, set())
        if len(fits) < _MAX_KEY_SETS:
            fits.add(names)
        return kwargs


def _with_ctx(kwargs: dict[str, Any], ctx: JobContext, pass_context: bool) -> dict[str, Any]:
    return {**kwargs, "ctx": ctx} if pass_context else kwargs
