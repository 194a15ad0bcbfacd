"""An agent run's model tokens and cost land in its attempt's usage (ADR 0022), summed
like any other usage per tenant; replayed model steps are not counted again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from treadle import Treadle
from treadle.agents.adapters.scripted import ScriptedAdapter
from treadle.core.lifecycle import JobStatus
from treadle.store.usage import UsageReader
from treadle.testing import run_worker


def test_tokens_and_cost_of_an_agent_run(app: Treadle) -> None:
    script = ScriptedAdapter([{"content": "draft", "usage": {"input_tokens": 1000,
                                                             "output_tokens": 50}}],
                             model="gpt-4.1-mini")
    agent = app.agent(name="writer", model=script)
    start = datetime.now(UTC) - timedelta(seconds=1)
    h = agent.configure(tenant="acme").defer(input="x")
    with run_worker(app):
        job = h.wait(30)
    assert job.status is JobStatus.SUCCEEDED, job.error
    report = job.result["report"]
    rows = UsageReader(app.store).attempts(h.id)
    assert sum(r["tokens_in"] for r in rows) == report["tokens_in"] == 1000
    assert sum(r["tokens_out"] for r in rows) == report["tokens_out"] == 50
    cost = sum(r["cost_usd"] for r in rows)
    assert cost > 0 and abs(cost - report["cost_usd"]) < 1e-9
    (acme,) = UsageReader(app.store).summary(start=start, end=datetime.now(UTC),
                                             group_by="tenant", tenant="acme")
    assert (acme.tokens_in, acme.tokens_out) == (1000, 50)
