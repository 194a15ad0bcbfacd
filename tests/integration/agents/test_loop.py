"""The agent loop end to end on both stores, with the scripted adapter."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from treadle import JobStatus, Treadle
from treadle.agents import ToolContext, tool
from treadle.agents.adapters.scripted import ScriptedAdapter
from treadle.testing import run_worker


class Copy(BaseModel):
    title: str
    body: str


def _lookup() -> Any:
    calls: list[str] = []

    @tool
    def lookup_product(sku: str) -> dict[str, Any]:
        """Look up a product by SKU.

        Args:
            sku: the product's stock-keeping unit
        """
        calls.append(sku)
        return {"sku": sku, "name": "Blue mug", "price": 12}

    return lookup_product, calls


def test_tool_call_then_valid_output(app: Treadle) -> None:
    lookup, calls = _lookup()
    script = ScriptedAdapter([
        {"tool_calls": [{"name": "lookup_product", "arguments": {"sku": "{input}"}}],
         "usage": {"input_tokens": 1000, "output_tokens": 100}},
        {"content": '{"title": "Blue mug", "body": "A mug. Blue."}',
         "usage": {"input_tokens": 1200, "output_tokens": 50}},
    ], model="gpt-4.1-mini")
    rewriter = app.agent(name="rewriter", model=script, instructions="Rewrite.",
                         tools=[lookup], output=Copy, budget_usd=0.5)
    h = rewriter.defer(input="A1")
    with run_worker(app):
        job = h.wait(30)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.result["output"] == {"title": "Blue mug", "body": "A mug. Blue."}
    rep = job.result["report"]
    assert rep["turns"] == 2 and rep["tool_calls"] == 1
    assert (rep["tokens_in"], rep["tokens_out"]) == (2200, 150)
    assert rep["stop_reason"] == "completed"
    assert abs(rep["cost_usd"] - (2200 * 0.4 + 150 * 1.6) / 1e6) < 1e-12
    assert calls == ["A1"]
    assert [s.name for s in app.job_steps(h.id)] == ["start", "model#0", "tool#0.0", "model#1"]
    # each turn reaches the live stream as it happens (ADR 0011)
    streamed = [(e.item.data["name"], e.item.data["state"]) for e in h.stream()
                if e.item is not None and e.item.kind == "step"]
    assert [n for n, state in streamed if state == "completed"] == [
        "start", "model#0", "tool#0.0", "model#1"]
    sku = lookup.parameters["properties"]["sku"]
    assert sku["description"] == "the product's stock-keeping unit"


def test_malformed_arguments_go_back_to_the_model(app: Treadle) -> None:
    lookup, calls = _lookup()
    deep = "[" * 10_000 + "]" * 10_000
    script = ScriptedAdapter([
        {"tool_calls": [{"name": "lookup_product", "arguments": '{"sku": '},
                        {"name": "lookup_product", "arguments": '{"sku": ' + deep + "}"},
                        {"name": "lookup_product", "arguments": {"sku": 5, "x": 1}},
                        {"name": "nope\ud800", "id": "x\x00", "arguments": "\ud800"}]},
        {"content": "done \ud800 with \x00 nul"},
    ])
    agent = app.agent(name="a", model=script, tools=[lookup])
    h = agent.defer(input="x")
    with run_worker(app):
        job = h.wait(30)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert calls == []
    assert job.result["report"]["tool_errors"] == 4
    assert "\ud800" not in job.result["output"] and "\x00" not in job.result["output"]


def test_iteration_cap_stops_a_model_that_never_stops(app: Treadle) -> None:
    lookup, calls = _lookup()
    script = ScriptedAdapter([{"tool_calls": [{"name": "lookup_product",
                                               "arguments": {"sku": "A"}}]}], loop=True)
    agent = app.agent(name="loopy", model=script, tools=[lookup], max_iterations=4)
    h = agent.defer(input="x")
    with run_worker(app):
        job = h.wait(30)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.error_class.value == "resource_exhausted"
    assert job.attempt == 1  # a spent budget is not retried
    info = job.error.detail["info"]
    assert info["stop_reason"] == "max_iterations" and info["report"]["turns"] == 4
    assert len(calls) == 4


def test_output_that_never_validates_fails_permanent(app: Treadle) -> None:
    script = ScriptedAdapter([{"content": "not json"}, {"content": '{"title": 1}'},
                              {"content": "```json\n{\"title\": \"t\"}\n```"}])
    agent = app.agent(name="bad", model=script, output=Copy, max_repairs=2)
    h = agent.defer(input="x")
    with run_worker(app):
        job = h.wait(30)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.error_class.value == "permanent"
    info = job.error.detail["info"]
    assert info["stop_reason"] == "invalid_output" and info["report"]["repairs"] == 2
    assert any("body" in e for e in info["errors"])


def test_side_effecting_tool_gets_a_stable_key(app: Treadle) -> None:
    keys: list[str] = []

    @tool(safe_to_repeat=False)
    def send_mail(to: str, ctx: ToolContext) -> str:
        """Send an email."""
        keys.append(ctx.idempotency_key)
        return "sent"

    assert "ctx" not in send_mail.parameters["properties"]
    script = ScriptedAdapter([{"tool_calls": [{"name": "send_mail", "arguments": {"to": "a"}}]},
                              {"content": '"ok"'}])
    agent = app.agent(name="mailer", model=script, tools=[send_mail],
                      output={"type": "string"})
    h = agent.defer(input="x")
    with run_worker(app):
        job = h.wait(30)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.result["output"] == "ok"
    assert keys == [f"treadle:{h.id}:tool#0.0"]
