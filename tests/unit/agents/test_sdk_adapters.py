"""The openai: and anthropic: adapters through the real SDKs against the loopback stub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from treadle.agents.adapters.anthropic_messages import AnthropicAdapter
from treadle.agents.adapters.errors import retry_after
from treadle.agents.adapters.openai_chat import OpenAIAdapter
from treadle.agents.messages import ModelRequest, ToolSpec
from treadle.agents.stub import StubLLM
from treadle.core.errors import InvalidInput, Permanent, RateLimited, Transient

TOOLS = [ToolSpec("lookup", "Look up", {"type": "object", "properties": {"sku": {"type": "string"}},
                                         "required": ["sku"]})]
CONVERSATION = [
    {"role": "user", "content": "rewrite A1"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "name": "lookup", "arguments": '{"sku": "A1"}'},
        {"id": "c2", "name": "lookup", "arguments": '{"sku": "A2"}'}]},
    {"role": "tool", "tool_call_id": "c1", "name": "lookup", "content": "mug", "is_error": False},
    {"role": "tool", "tool_call_id": "c2", "name": "lookup", "content": "err", "is_error": True},
]


@pytest.fixture
def stub() -> Iterator[StubLLM]:
    with StubLLM() as s:
        yield s


def _adapters(stub: StubLLM, stream: bool) -> list[Any]:
    return [OpenAIAdapter("gpt-4.1-mini", base_url=stub.openai_url, api_key="k", stream=stream),
            AnthropicAdapter("claude-haiku-4-5", base_url=stub.anthropic_url, api_key="k",
                             stream=stream)]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("which", [0, 1])
def test_tool_calls_and_usage(stub: StubLLM, stream: bool, which: int) -> None:
    adapter = _adapters(stub, stream)[which]
    stub.push({"content": "let me look", "tool_calls": [
        {"id": "t1", "name": "lookup", "arguments": {"sku": "A1", "deep": {"x": [1, 2]}}}],
        "usage": {"input_tokens": 321, "output_tokens": 45}})
    res = adapter.complete(ModelRequest("be brief", CONVERSATION, TOOLS, turn=1))
    assert res.text == "let me look"
    assert len(res.tool_calls) == 1 and res.tool_calls[0].name == "lookup"
    assert json.loads(res.tool_calls[0].arguments) == {"sku": "A1", "deep": {"x": [1, 2]}}
    assert (res.usage.input_tokens, res.usage.output_tokens) == (321, 45)
    assert res.stop == "tool_calls"
    sent = stub.requests[-1]["body"]
    assert bool(sent.get("stream")) is stream
    if which == 0:
        assert sent["messages"][0] == {"role": "system", "content": "be brief"}
        assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "tool",
                                                         "tool"]
        assert sent["tools"][0]["function"]["name"] == "lookup"
    else:
        assert sent["system"] == "be brief"
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        results = sent["messages"][2]["content"]
        assert [b["type"] for b in results] == ["tool_result", "tool_result"]
        assert results[1]["is_error"] is True
        assert sent["tools"][0]["input_schema"]["required"] == ["sku"]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("which", [0, 1])
def test_errors_are_classified(stub: StubLLM, stream: bool, which: int) -> None:
    adapter = _adapters(stub, stream)[which]
    req = ModelRequest("", [{"role": "user", "content": "hi"}], [], turn=0)
    stub.push({"status": 429, "headers": {"retry-after": "7"}})
    with pytest.raises(RateLimited) as rl:
        adapter.complete(req)
    assert rl.value.retry_after == 7
    stub.push({"status": 503})
    with pytest.raises(Transient):
        adapter.complete(req)
    stub.push({"status": 401})
    with pytest.raises(Permanent):
        adapter.complete(req)
    stub.push({"status": 400, "code": "context_length_exceeded",
               "message": "This model's maximum context length is 128000 tokens"})
    with pytest.raises(InvalidInput):
        adapter.complete(req)
    stub.push({"status": 400, "message": "prompt is too long: 210000 tokens > 200000 maximum"})
    with pytest.raises(InvalidInput):
        adapter.complete(req)


def test_connection_refused_is_transient() -> None:
    for adapter in (OpenAIAdapter("m", base_url="http://127.0.0.1:9/v1", api_key="k"),
                    AnthropicAdapter("m", base_url="http://127.0.0.1:9", api_key="k")):
        with pytest.raises(Transient):
            adapter.complete(ModelRequest("", [{"role": "user", "content": "x"}], [], 0,
                                          timeout=2))


def test_retry_after_forms() -> None:
    assert retry_after({"Retry-After": "3"}) == 3
    assert retry_after({"retry-after-ms": "1500"}) == 1.5
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now=1445412470) == 10
    assert retry_after({"retry-after": "-5"}) == 0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({"retry-after": "1e309"}) == 3600
