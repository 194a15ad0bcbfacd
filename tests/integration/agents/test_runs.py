"""Agent runs through the real SDKs against the stub, the ledger, the HTTP API and the UI."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from tests.e2e.api.conftest import ADMIN_KEY, tenant_keys
from tests.integration.workflows.procs import wait_until
from tests.support.pg import free_port
from treadle import JobStatus, Treadle
from treadle.agents import Agents, tool
from treadle.agents.adapters.anthropic_messages import AnthropicAdapter
from treadle.agents.adapters.openai_chat import OpenAIAdapter
from treadle.agents.adapters.scripted import ScriptedAdapter
from treadle.agents.stub import StubLLM
from treadle.api import ApiConfig, create_app
from treadle.testing import run_worker
from treadle.ui import mount


@tool
def lookup(sku: str) -> dict[str, str]:
    """Look up a product."""
    return {"sku": sku, "name": "Blue mug"}


@pytest.fixture
def stub() -> Iterator[StubLLM]:
    with StubLLM() as s:
        yield s


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_429_with_retry_after_resumes_without_repeating_calls(
    app: Treadle, stub: StubLLM, vendor: str,
) -> None:
    if vendor == "openai":
        adapter: object = OpenAIAdapter("gpt-4.1-mini", base_url=stub.openai_url,
                                        api_key="k", stream=True)
    else:
        adapter = AnthropicAdapter("claude-haiku-4-5", base_url=stub.anthropic_url,
                                   api_key="k")
    stub.push({"tool_calls": [{"name": "lookup", "arguments": {"sku": "A1"}}],
               "usage": {"input_tokens": 100, "output_tokens": 10}},
              {"status": 429, "headers": {"retry-after": "1"}},
              {"content": "done", "usage": {"input_tokens": 200, "output_tokens": 20}})
    agent = app.agent(name="r", model=adapter, tools=[lookup], retries=3)
    h = agent.defer(input="A1")
    with run_worker(app):
        job = h.wait(60)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.attempt == 2
    rep = job.result["report"]
    assert (rep["turns"], rep["tool_calls"]) == (2, 1)
    assert (rep["tokens_in"], rep["tokens_out"]) == (300, 30)  # the first call's kept
    assert len(stub.requests) == 3  # the completed first call was not repeated
    retry = [e for e in app.job_events(h.id) if e.reason and "retry" in e.reason]
    assert retry, [e.reason for e in app.job_events(h.id)]
    spend = app.plugin(Agents).ledger.job(h.id)
    assert [(r["turn"], r["tokens_in"]) for r in spend] == [(0, 100), (1, 200)]


def test_tenant_cap_stops_runs_and_cost_budget(app: Treadle) -> None:
    script = ScriptedAdapter([{"content": "a", "usage": {"input_tokens": 1_000_000,
                                                          "output_tokens": 0}}],
                             model="gpt-4.1-mini")
    agent = app.agent(name="spender", model=script)
    ledger = app.plugin(Agents).ledger
    ledger.set_cap("acme", 0.5)
    first = agent.configure(tenant="acme").defer(input="x")
    with run_worker(app):
        assert first.wait(30).status is JobStatus.SUCCEEDED  # 0.40 spent: under the cap
        second = agent.configure(tenant="acme").defer(input="y")
        assert second.wait(30).status is JobStatus.SUCCEEDED  # 0.40 < 0.5 when it started
        third = agent.configure(tenant="acme").defer(input="z")
        job = third.wait(30)
        other = agent.defer(input="w").wait(30)  # another tenant is not capped
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error.detail["info"]["stop_reason"] == "tenant_budget"
    assert other.status is JobStatus.SUCCEEDED
    rows = {r.tenant: r for r in ledger.by_tenant()}
    assert rows["acme"].runs == 2 and abs(rows["acme"].cost_usd - 0.8) < 1e-9
    assert rows["acme"].cap_usd == 0.5

    looping = ScriptedAdapter([{"tool_calls": [{"name": "lookup", "arguments": {"sku": "A"}}],
                                "usage": {"input_tokens": 100_000, "output_tokens": 0}}],
                              loop=True, model="gpt-4.1-mini")
    capped = app.agent(name="capped", model=looping, tools=[lookup], budget_usd=0.1)
    h = capped.defer(input="x")
    with run_worker(app):
        job = h.wait(30)
    assert job.error is not None and job.error.detail["info"]["stop_reason"] == "budget_usd"
    assert job.error.detail["info"]["report"]["turns"] == 3  # 0.04 a call: 3 calls reach 0.1


def test_wall_time_budget(app: Treadle) -> None:
    script = ScriptedAdapter([{"tool_calls": [{"name": "lookup", "arguments": {"sku": "A"}}],
                               "delay": 0.4}], loop=True)
    agent = app.agent(name="slow", model=script, tools=[lookup], timeout=1.0,
                      max_iterations=50)
    h = agent.defer(input="x")
    with run_worker(app):
        job = h.wait(30)
    assert job.error is not None and job.error.detail["info"]["stop_reason"] == "timeout"
    assert 2 <= job.error.detail["info"]["report"]["turns"] <= 3


def test_http_run_jobs_report_and_ui(app: Treadle) -> None:
    script = ScriptedAdapter([
        {"tool_calls": [{"name": "lookup", "arguments": {"sku": "{input}"}}]},
        {"content": '{"title": "Mug <b>", "body": "b"}'}], model="gpt-4.1-mini")
    app.agent(name="rewriter", model=script, tools=[lookup],
              output={"type": "object", "required": ["title", "body"]})
    keys = tenant_keys(app)
    port = free_port()
    web = create_app(app, ApiConfig(admin_key=ADMIN_KEY, sync_window=20))
    mount(web, app, secret="agent-ui-tests-secret-0123456789")
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    try:
        wait_until(lambda: server.started, 10, "the server")
        with run_worker(app), httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                           headers={"Authorization": f"Bearer {keys['a']}"}) as c:
            r = c.post("/v1/run", json={"task": "rewriter", "payload": {"input": "A1"}})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["result"]["output"]["title"] == "Mug <b>"
            assert body["result"]["report"]["tool_calls"] == 1
            r = c.post("/v1/jobs", json={"task": "rewriter", "payload": {"input": "A2"}})
            assert r.status_code == 202
            bad = c.post("/v1/jobs", json={"task": "rewriter", "payload": {"nope": 1}})
            assert bad.status_code in (400, 422), bad.text
            run = c.get(f"/v1/agents/runs/{body['id']}").json()
            assert run["stop_reason"] == "completed"
            assert run["turns"][0]["tools"][0]["arguments"] == '{"sku": "A1"}'
            other = httpx.get(f"http://127.0.0.1:{port}/v1/agents/runs/{body['id']}",
                              headers={"Authorization": f"Bearer {keys['b']}"})
            assert other.status_code == 404
            assert c.get("/v1/agents/spend").json()["tenants"][0]["tenant"] == "tenant-a"
            assert c.put("/v1/agents/caps/tenant-a", json={"cap_usd": 1}).status_code == 403
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            form = http.get("/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert token is not None
            http.post("/login", data={"api_key": keys["admin"], "csrf_token": token.group(1)})
            page = http.get(f"/agents/runs/{body['id']}").text
            dash = http.get("/").text
            index = http.get("/agents").text
    finally:
        server.should_exit = True
        time.sleep(0.05)
    assert 'data-testid="stop-reason">completed' in page
    assert page.count('data-testid="turn"') == 2 and 'data-testid="tool-call"' in page
    assert "Mug &lt;b&gt;" in page and "Mug <b>" not in page  # escaped
    assert 'data-testid="agent-spend"' in dash and "tenant-a" in dash
    assert f"/agents/runs/{body['id']}" in index
