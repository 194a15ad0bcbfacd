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


class TaskExecutor:
    def __init__(self, app: Treadle) -> None:
        self.app = app
        self._signatures: dict[str, inspect.Signature] = {}

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
        sig = self._signatures.get(task.name)
        if sig is None:
            sig = self._signatures[task.name] = inspect.signature(task.fn)
        kwargs = dict(job.payload)
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
        return kwargs


def _with_ctx(kwargs: dict[str, Any], ctx: JobContext, pass_context: bool) -> dict[str, Any]:
    return {**kwargs, "ctx": ctx} if pass_context else kwargs
