"""Runs jobs of kind ``agent``: the loop over the workflow engine's step log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from treadle.agents.ledger import Ledger
from treadle.agents.loop import RunEnv, run_agent
from treadle.agents.sources import parse_documents
from treadle.agents.steps import AgentContext
from treadle.context import JobContext, Suspend
from treadle.core.errors import InvalidInput, LeaseLost, Permanent
from treadle.core.job import Job, NewJob
from treadle.executors.base import Runnable
from treadle.workflows.db import WorkflowDb
from treadle.workflows.model import FencedSignal, SuspendSignal
from treadle.workflows.steplog import SqlStepLog

if TYPE_CHECKING:
    from treadle.app import Treadle


class AgentExecutor:
    def __init__(self, app: Treadle, db: WorkflowDb, ledger: Ledger | None) -> None:
        self.app = app
        self.db = db
        self.ledger = ledger

    def prepare(self, job: Job) -> Runnable:
        from treadle.agents.agent import Agent, input_text

        agent = self.app.tasks.get(job.task)
        if not isinstance(agent, Agent):
            raise Permanent(f"no agent named {job.task!r} is registered in this worker",
                            detail={"task": job.task})
        payload = agent.check_arguments(dict(job.payload))
        text = input_text(payload["input"])
        documents = parse_documents(payload.get("documents"))
        env = RunEnv(self.app.clock, self.ledger, job.id, job.tenant)
        ledger_sql = self.ledger.sql if self.ledger is not None else None

        def call(jctx: JobContext) -> Any:
            ctx = AgentContext(jctx, SqlStepLog(self.db, job), self.app.clock,
                               _no_children).bind(self.db, ledger_sql)
            try:
                result = run_agent(ctx, agent.spec, text, documents, env)
                ctx.finish()
            except SuspendSignal:  # an agent never waits; a tool that is a workflow might
                raise Suspend("waiting") from None
            except FencedSignal:
                raise LeaseLost("a checkpoint was refused: this attempt lost its lease") from None
            return result

        opts = agent.options
        return Runnable(call=call, retry_policy=opts.retry_policy,
                        error_overrides=opts.error_overrides,
                        default_error_class=opts.default_error_class)


def _no_children(task: Any, payload: Mapping[str, Any]) -> NewJob:
    raise InvalidInput("an agent run does not create child jobs")
