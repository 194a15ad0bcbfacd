"""Durable workflows: checkpointed steps, durable sleep and events, child jobs (ADR 0009).

::

    @app.workflow(name="report", retries=3, timeout=60)
    def report(ctx, customer: str) -> dict:
        rows = ctx.step("fetch", fetch_rows, customer)
        ctx.sleep(30)
        ok = ctx.wait_event(f"approve:{customer}", timeout=3600)
        parts = ctx.map("score", score_task, [{"row": r} for r in rows])
        return {"scores": parts, "approved": ok}

See docs/workflows.md.
"""

from treadle.workflows.context import COLLECT, FAIL_FAST, WorkflowContext, current_step_key
from treadle.workflows.events import MAX_EVENT_BYTES, EventTooLarge
from treadle.workflows.model import (
    ChildFailed,
    ChildResult,
    DuplicateStep,
    NonDeterministic,
    Step,
    StepKind,
    StepResultNotJson,
    StepStatus,
)
from treadle.workflows.workflow import Workflow

__all__ = [
    "COLLECT",
    "FAIL_FAST",
    "MAX_EVENT_BYTES",
    "ChildFailed",
    "ChildResult",
    "DuplicateStep",
    "EventTooLarge",
    "NonDeterministic",
    "Step",
    "StepKind",
    "StepResultNotJson",
    "StepStatus",
    "Workflow",
    "WorkflowContext",
    "current_step_key",
]
