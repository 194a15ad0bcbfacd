"""A dynamic worker as an agent's tool: sandboxed, the run's tenant, errors to the model."""

from __future__ import annotations

import json

from tests.integration.dynamic.conftest import Dyn
from treadle import JobStatus
from treadle.agents.adapters.scripted import ScriptedAdapter
from treadle.agents.dynamic_tool import dynamic_tool
from treadle.agents.runs import run_view
from treadle.testing import run_worker

CODE = """
def handler(input, env):
    if input["n"] < 0:
        raise ValueError("negative")
    return {"square": input["n"] * input["n"]}
"""


def test_dynamic_worker_tool(dyn: Dyn) -> None:
    worker = dyn.workers.register(CODE, "python", tenant=dyn.tenant)
    square = dynamic_tool(dyn.app, worker.id, name="square", description="Square n.",
                          parameters={"type": "object", "required": ["n"],
                                      "properties": {"n": {"type": "integer"}}})
    script = ScriptedAdapter([
        {"tool_calls": [{"name": "square", "arguments": {"n": 7}},
                        {"name": "square", "arguments": {"n": -1}},
                        {"name": "square", "arguments": {"n": "x"}}]},
        {"content": "{last_tool}"}])
    agent = dyn.app.agent(name="math", model=script, tools=[square])
    h = agent.configure(tenant=dyn.tenant).defer(input="go")
    with run_worker(dyn.app):  # the fixture's worker started before the agent kind existed
        job = dyn.finished(h.id, 60)
        other = agent.configure(tenant="someone-else").defer(input="go")
        job2 = dyn.finished(other.id, 60)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.result["report"]["tool_errors"] == 2
    tools = run_view(job, dyn.app.job_steps(job.id))["turns"][0]["tools"]
    assert json.loads(tools[0]["content"]) == {"square": 49}
    assert tools[1]["is_error"] and "negative" in tools[1]["content"]
    assert tools[2]["is_error"] and "invalid arguments" in tools[2]["content"]
    # Another tenant's run cannot use this tenant's worker.
    job = job2
    assert job.status is JobStatus.SUCCEEDED
    first = run_view(job, dyn.app.job_steps(job.id))["turns"][0]["tools"][0]
    assert first["is_error"] and "no dynamic worker" in first["content"]
