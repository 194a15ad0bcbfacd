"""Runs jobs of kind ``workflow``: replays the function over its step log (ADR 0009)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from treadle.context import JobContext, Suspend
from treadle.core.errors import InvalidInput, LeaseLost, Permanent
from treadle.core.job import Job, NewJob
from treadle.executors.base import Runnable
from treadle.workflows.context import WorkflowContext
from treadle.workflows.db import WorkflowDb
from treadle.workflows.model import FencedSignal, SuspendSignal
from treadle.workflows.steplog import SqlStepLog

if TYPE_CHECKING:
    from treadle.app import Task, Treadle
    from treadle.artifacts.context import JobArtifacts


class WorkflowExecutor:
    def __init__(self, app: Treadle, db: WorkflowDb) -> None:
        self.app = app
        self.db = db

    def prepare(self, job: Job) -> Runnable:
        from treadle.workflows.workflow import Workflow

        wf = self.app.tasks.get(job.task)
        if not isinstance(wf, Workflow):
            raise Permanent(
                f"no workflow named {job.task!r} is registered in this worker",
                detail={"task": job.task},
            )
        kwargs = wf.check_arguments(dict(job.payload))
        opts = wf.options

        def call(jctx: JobContext) -> Any:
            jctx.artifacts_factory = self.artifacts_for
            ctx = WorkflowContext(jctx, SqlStepLog(self.db, job), self.app.clock,
                                  self.make_child)
            try:
                result = wf.fn(ctx, **kwargs)
                ctx.finish()
            except SuspendSignal:
                raise Suspend(f"waiting at step #{ctx._seq - 1}") from None
            except FencedSignal:
                raise LeaseLost("a checkpoint was refused: this attempt lost its lease") from None
            return result

        return Runnable(call=call, retry_policy=opts.retry_policy,
                        error_overrides=opts.error_overrides,
                        default_error_class=opts.default_error_class)

    def artifacts_for(self, job: Job) -> JobArtifacts:
        from treadle.artifacts.context import JobArtifacts

        return JobArtifacts(self.app.artifacts, job)

    def make_child(self, task: Any, payload: Mapping[str, Any]) -> NewJob:
        """A child job of ``ctx.map``/``ctx.spawn``: ``task`` is a registered task or
        workflow, its name, or the function it was registered from."""
        found: Task[Any, Any] | None = None
        if isinstance(task, str):
            found = self.app.get_task(task)
        elif task in self.app.tasks.values():
            found = task
        else:
            found = next((t for t in self.app.tasks.values() if t.fn is task), None)
        if found is None:
            raise InvalidInput(f"{task!r} is not a registered task or workflow: child jobs "
                               "run registered functions")
        return found.new_job(payload)
