"""The openai: and anthropic: adapters through the real SDKs against the loopback stub."""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from treadle.agents.adapters.anthropic_messages import AnthropicAdapter
from treadle.agents.adapters.errors import retry_after
from treadle.agents.adapters.openai_chat import OpenAIAdapter
from treadle.agents.messages import Message, ModelRequest, ToolSpec
from treadle.agents.stub import StubLLM
from treadle.core.errors import InvalidInput, Permanent, RateLimited, Transient

TOOLS = [ToolSpec("lookup", "Look up", {"type": "object", "properties": {"sku": {"type": "string"}},
                                         "required": ["sku"]})]
CONVERSATION: list[Message] = [
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


@pytest.mark.parametrize("cls", [OpenAIAdapter, AnthropicAdapter])
def test_one_lazy_client_per_adapter_closed_with_it(cls: Any) -> None:
    adapter = cls("m", base_url="http://127.0.0.1:9", api_key="k")
    assert adapter._client is None  # nothing built (or imported) until the first call
    barrier = threading.Barrier(8)
    seen: list[Any] = []

    def first_call() -> None:
        barrier.wait()
        seen.append(adapter.client())

    threads = [threading.Thread(target=first_call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and all(c is seen[0] for c in seen)  # worker threads share one
    assert not seen[0].is_closed()
    adapter.close()
    assert seen[0].is_closed() and adapter._client is None
    adapter.close()  # twice is fine


@pytest.mark.parametrize("cls", [OpenAIAdapter, AnthropicAdapter])
def test_a_client_passed_in_is_left_to_its_owner(cls: Any) -> None:
    sdk = importlib.import_module(cls.sdk)
    mine = getattr(sdk, cls.client_class)(base_url="http://127.0.0.1:9", api_key="k")
    adapter = cls("m", client=mine)
    assert adapter.client() is mine
    adapter.close()
    assert not mine.is_closed()
    mine.close()


def test_the_app_closes_the_clients_of_agents_it_built_from_model_strings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from treadle import Treadle

    monkeypatch.setenv("OPENAI_API_KEY", "k")
    app = Treadle(f"sqlite:///{tmp_path / 'a.db'}")
    built = app.agent(name="built", model="openai:gpt-4.1-mini")
    passed = OpenAIAdapter("gpt-4.1-mini", api_key="k")
    given = app.agent(name="given", model=passed)
    built_client = built.spec.adapter.client()  # type: ignore[attr-defined]
    given_client = passed.client()
    app.close()
    assert built.owns_adapter and not given.owns_adapter
    assert built_client.is_closed() and not given_client.is_closed()
    passed.close()
