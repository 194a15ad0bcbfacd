"""Hostile model answers in the providers' own wire format (ADR 0006, ADR 0012), through
the real ``openai`` and ``anthropic`` SDKs, both stores.

The model server is not ours: its answer may be no JSON, nested past the parser, or JSON
with fields of the wrong type. Before: a usage count as text, a ``finish_reason`` that is
an object, a text block that is a number or a tool input with NaN raised TypeError or
ValueError from the adapter (the run failed as ``transient`` with the parser's words,
and was retried against the same answer), and a usage count of ``10**400`` made the
model step's checkpoint unstorable (``permanent``). Now an unreadable answer is a
``transient`` error that says so, what can be read is read (counts bounded, text made
text, bad tool input answered to the model as a bad call), and the worker carries on.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from treadle import JobStatus, Treadle
from treadle.agents.adapters.anthropic_messages import AnthropicAdapter
from treadle.agents.adapters.openai_chat import OpenAIAdapter
from treadle.agents.adapters.scripted import ScriptedAdapter
from treadle.agents.tools import tool
from treadle.core.errors import ConfigurationError, ErrorClass
from treadle.testing import migrated, run_worker

pytest.importorskip("openai")
pytest.importorskip("anthropic")

DEEP = "[" * 10_000 + "]" * 10_000


def openai_answer(message: Any = None, **fields: Any) -> bytes:
    body: dict[str, Any] = {
        "id": "x", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": message or {"role": "assistant", "content": "hi"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    return json.dumps({**body, **fields}).encode()


def anthropic_answer(content: Any = None, **fields: Any) -> bytes:
    body: dict[str, Any] = {
        "id": "x", "type": "message", "role": "assistant", "model": "m",
        "content": content if content is not None else [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}}
    return json.dumps({**body, **fields}).encode()


UNREADABLE: dict[str, tuple[str, bytes]] = {
    "openai_not_json": ("openai", b"<html>bad gateway</html>"),
    "openai_too_deep": ("openai", openai_answer().replace(b'"hi"', DEEP.encode())),
    "anthropic_not_json": ("anthropic", b"\xff\xfe garbage"),
    "anthropic_too_deep": ("anthropic", anthropic_answer().replace(
        b'[{"type": "text", "text": "hi"}]', DEEP.encode())),
}
READABLE: dict[str, tuple[str, bytes]] = {
    "openai_usage_text": ("openai", openai_answer(usage={
        "prompt_tokens": "abc", "completion_tokens": -5, "total_tokens": 1})),
    "openai_usage_huge": ("openai", openai_answer(usage={
        "prompt_tokens": 10**400, "completion_tokens": 1e308, "total_tokens": 1})),
    "openai_finish_object": ("openai", openai_answer(choices=[
        {"index": 0, "finish_reason": {"x": 1},
         "message": {"role": "assistant", "content": "hi"}}])),
    "openai_content_number": ("openai", openai_answer({"role": "assistant", "content": 5})),
    "anthropic_text_number": ("anthropic", anthropic_answer([{"type": "text", "text": 5}])),
    "anthropic_usage_text": ("anthropic", anthropic_answer(
        usage={"input_tokens": None, "output_tokens": "x"})),
    "anthropic_stop_object": ("anthropic", anthropic_answer(stop_reason=[1])),
}
# Answered as a bad call, every time: the run ends at its own budget, not in the adapter.
BAD_TOOL_INPUT = ("anthropic", (
    b'{"id":"x","type":"message","role":"assistant","model":"m","stop_reason":"tool_use",'
    b'"usage":{"input_tokens":1,"output_tokens":1},"content":[{"type":"tool_use","id":"t",'
    b'"name":"echo","input":{"s":NaN}}]}'))


class _Server:
    """A model server that answers every request with the bytes set in ``answer``."""

    def __init__(self) -> None:
        self.answer = b""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(server.answer)))
                self.end_headers()
                self.wfile.write(server.answer)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def model_server() -> Iterator[_Server]:
    server = _Server()
    yield server
    server.http.shutdown()
    server.http.server_close()


def test_hostile_model_answers_fail_or_read_clearly_and_the_worker_carries_on(
    db_url: str, model_server: _Server
) -> None:
    @tool
    def echo(s: str) -> str:
        """Echo."""
        return s

    with Treadle(db_url) as app:
        agents = {}
        cases = {**UNREADABLE, **READABLE, "bad_tool_input": BAD_TOOL_INPUT}
        for name, (provider, _) in cases.items():
            adapter: Any = (OpenAIAdapter("m", base_url=model_server.url + "/v1", api_key="k")
                            if provider == "openai" else
                            AnthropicAdapter("m", base_url=model_server.url, api_key="k"))
            agents[name] = app.agent(name=name, model=adapter, tools=[echo],
                                     instructions="x", max_iterations=2, retries=0)
        app.task(name="give", retries=0)(lambda value=None: value)
        with run_worker(app, concurrency=1):  # one at a time: one answer per run
            done = {}
            for name, (_, answer) in cases.items():
                model_server.answer = answer
                done[name] = agents[name].defer(input="go").wait(60)
            assert app.defer("give", {"value": 7}).wait(20).result == 7
        for name in UNREADABLE:
            job = done[name]
            assert job.status is JobStatus.FAILED and job.error is not None, name
            assert job.error.error_class is ErrorClass.TRANSIENT, (name, job.error)
            assert "could not be read as an answer" in job.error.message, (name, job.error)
        for name in READABLE:
            job = done[name]
            assert job.status is JobStatus.SUCCEEDED, (name, job.error)
            report = job.result["report"]
            assert 0 <= report["tokens_in"] <= 1 << 40 and 0 <= report["tokens_out"] <= 1 << 40
        bad = done["bad_tool_input"]
        assert bad.status is JobStatus.FAILED and bad.error is not None
        assert bad.error.error_class is ErrorClass.RESOURCE_EXHAUSTED, bad.error  # its budget


BAD_AGENT_OPTIONS: list[dict[str, Any]] = [
    {"max_tokens": math.nan}, {"max_tokens": "5"}, {"max_tokens": 1.5},
    {"budget_usd": math.nan}, {"budget_usd": "1"}, {"budget_usd": math.inf},
    {"timeout": math.nan}, {"timeout": "5"},
    {"prices": {"m": (math.nan, 1)}}, {"prices": {"m": ("a", 1)}}, {"prices": 5},
    {"prices": {"\ud800": (1, 1)}},
    {"context_tokens": math.nan}, {"context_tokens": "x"}, {"context_tokens": -5},
    {"max_output_tokens": math.nan}, {"max_output_tokens": -1},
    {"max_output_tokens": 10**30},
    {"instructions": 5}, {"tools": [5]}, {"validators": [5]},
    {"name": "a\x00"}, {"queue": "\ud800"},
]


@pytest.mark.parametrize("options", BAD_AGENT_OPTIONS, ids=lambda o: repr(o)[:40])
def test_agent_options_no_run_could_use_are_refused_at_registration(
    sqlite_url: str, options: dict[str, Any]
) -> None:
    # Before: NaN budgets and token caps were accepted and never enforced (NaN compares
    # false with any spend), a context budget of NaN failed every run as invalid_output,
    # text where numbers go and a tool that is no function raised TypeError or
    # AttributeError (at registration or, worse, in every run).
    with Treadle(migrated(sqlite_url)) as app:
        with pytest.raises(ConfigurationError):
            app.agent(**{"name": "a", "model": ScriptedAdapter([{"content": "done"}]),
                         **options})
        assert app.tasks == {}
