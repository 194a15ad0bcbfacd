"""A worker SIGKILLed mid-run resumes the agent at the first unfinished call, on both
stores: completed model calls are never repeated and the tokens spent before the crash
stay in the report and the ledger (no double spend)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.workflows.procs import WorkerProcs, wait_until
from treadle import JobStatus, Treadle
from treadle.agents import Agents
from treadle.agents.stub import StubLLM


class AgentProcs(WorkerProcs):
    app = "tests.integration.agents.agent_app:app"

    def __init__(self, db_url: str, marks: Path, logs: Path, stub_url: str) -> None:
        super().__init__(db_url, marks, logs)
        self.stub_url = stub_url

    def env(self) -> dict[str, str]:
        return {**super().env(), "AGENT_MARKS": str(self.marks),
                "AGENT_STUB_URL": self.stub_url, "AGENT_TOOL_SECONDS": "1.0"}


@pytest.fixture
def stub() -> Iterator[StubLLM]:
    with StubLLM(default={"content": "all done",
                          "usage": {"input_tokens": 1000, "output_tokens": 100}}) as s:
        yield s


@pytest.fixture
def procs(db_url: str, tmp_path: Path, stub: StubLLM) -> Iterator[AgentProcs]:
    marks, logs = tmp_path / "marks", tmp_path / "logs"
    marks.mkdir()
    logs.mkdir()
    w = AgentProcs(db_url, marks, logs, stub.openai_url)
    yield w
    w.stop_all()
    print(w.tracebacks())


def test_sigkill_mid_run_resumes_without_double_spend(
    db_url: str, procs: AgentProcs, stub: StubLLM,
) -> None:
    from tests.integration.agents.agent_app import agent

    for n in range(3):
        stub.push({"tool_calls": [{"name": "slow", "arguments": {"n": n}}],
                   "usage": {"input_tokens": 100 * (n + 1), "output_tokens": 10}})
    app = Treadle(db_url)
    h = app.enqueue([agent.new_job({"input": "go"})])[0]
    victim = procs.start()
    wait_until(lambda: "start 1" in procs.lines(), 60, "the second tool call",
               tick=app.store.reap)
    procs.kill9(victim)  # model#0, tool#0.0 and model#1 are checkpointed; tool#1.0 is not
    assert len(stub.requests) == 2
    procs.start()
    wait_until(lambda: app.get_job(h.id).is_finished, 90, "the run to finish",
               tick=app.store.reap)
    job = app.get_job(h.id)
    assert job.status is JobStatus.SUCCEEDED, (job.error, procs.tracebacks())
    assert job.result["output"] == "all done"
    rep = job.result["report"]
    assert len(stub.requests) == 4 == rep["turns"]  # no model call was made twice
    assert rep["tokens_in"] == 100 + 200 + 300 + 1000  # spent before the crash: kept
    assert rep["tokens_out"] == 10 * 3 + 100
    assert rep["tool_calls"] == 3
    starts = [line for line in procs.lines() if line.startswith("start")]
    assert starts.count("start 0") == 1 and starts.count("start 2") == 1
    assert starts.count("start 1") == 2  # the interrupted tool call ran again
    ledger = app.plugin(Agents).ledger if app.find_plugin(Agents) else None
    if ledger is None:
        ledger = app.use(Agents()).ledger
    spend = ledger.job(h.id)
    assert [r["turn"] for r in spend] == [0, 1, 2, 3]
    assert sum(r["tokens_in"] for r in spend) == rep["tokens_in"]
    # The kill is seen by the worker's liveness (ADR 0018) or, failing that, its lease.
    reasons = [e.reason for e in app.job_events(h.id)]
    assert reasons.count("lease_expired") + reasons.count("worker_died") == 1
    app.close()
