"""``treadle agents``: spend, cap, and a run turn by turn."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.integration.agents.test_loop import _lookup
from treadle import JobStatus, Treadle
from treadle.agents.adapters.scripted import ScriptedAdapter
from treadle.cli import app as cli
from treadle.testing import run_worker


def test_spend_cap_and_run(app: Treadle, db_url: str) -> None:
    lookup, _ = _lookup()
    script = ScriptedAdapter([
        {"tool_calls": [{"name": "lookup_product", "arguments": {"sku": "Z9"}}],
         "usage": {"input_tokens": 100, "output_tokens": 5}},
        {"content": "fine", "usage": {"input_tokens": 150, "output_tokens": 5}}],
        model="gpt-4.1-mini")
    h = app.agent(name="c", model=script, tools=[lookup]).defer(input="x")
    with run_worker(app):
        assert h.wait(30).status is JobStatus.SUCCEEDED
    runner = CliRunner()
    env = {"COLUMNS": "200", "NO_COLOR": "1"}
    r = runner.invoke(cli, ["agents", "cap", "default", "2.5", "--db", db_url], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["agents", "spend", "--db", db_url], env=env)
    assert r.exit_code == 0, r.output
    assert "default" in r.output and "250" in r.output and "2.50" in r.output
    r = runner.invoke(cli, ["agents", "run", str(h.id), "--db", db_url], env=env)
    assert r.exit_code == 0, r.output
    view = json.loads(r.output)
    assert view["stop_reason"] == "completed" and view["turns"][0]["tools"][0]["name"] \
        == "lookup_product"
