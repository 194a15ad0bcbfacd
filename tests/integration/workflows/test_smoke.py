from __future__ import annotations

from typing import Any

from tests.integration.workflows.conftest import Running
from treadle import JobStatus, Treadle
from treadle.workflows import StepStatus, WorkflowContext


def test_steps_sleep_event_map(app: Treadle) -> None:
    calls: list[str] = []

    @app.task(name="score", retries=0)
    def score(row: int) -> int:
        return row * 10

    def fetch(customer: str) -> list[int]:
        calls.append("fetch")
        return [1, 2, 3]

    @app.workflow(name="report", retries=3, timeout=60)
    def report(ctx: WorkflowContext, customer: str) -> dict[str, Any]:
        rows = ctx.step("fetch", fetch, customer)
        ctx.sleep(0.2)
        ok = ctx.wait_event(f"approve:{customer}", timeout=3600)
        parts = ctx.map("score", score, [{"row": r} for r in rows])
        return {"scores": parts, "approved": ok}

    h = report.defer(customer="acme")
    app.send_event("approve:acme", {"by": "ops"})
    with Running(app):
        job = h.wait(30)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.result == {"scores": [10, 20, 30], "approved": {"by": "ops"}}
    assert calls == ["fetch"]
    steps = app.job_steps(h.id)
    assert [s.name for s in steps] == ["fetch", "sleep@1", "wait_event@2", "score"]
    assert all(s.status is StepStatus.COMPLETED for s in steps)
    assert len(steps[3].children) == 3
    reasons = [e.reason for e in app.job_events(h.id)]
    assert "waiting" in reasons and "woken" in reasons and "step_completed" in reasons


def test_workflow_steps_and_emits_reach_the_live_stream(app: Treadle) -> None:
    @app.workflow(name="streamed", retries=0, timeout=60)
    def streamed(ctx: WorkflowContext) -> int:
        a = ctx.step("one", lambda: 1)
        ctx.emit("turn", {"a": a})
        ctx.progress(1, 2)
        return int(ctx.step("two", lambda: a + 1))

    h = streamed.defer()
    with Running(app):
        assert h.wait(30).status is JobStatus.SUCCEEDED
    items = [e.item for e in h.stream() if e.item is not None]
    assert [(i.kind, i.data.get("name"), i.data.get("state")) if i.kind == "step"
            else (i.kind, None, None) for i in items] == [
        ("step", "one", "started"), ("step", "one", "completed"), ("turn", None, None),
        ("progress", None, None), ("step", "two", "started"), ("step", "two", "completed")]
