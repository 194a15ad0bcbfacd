"""Pure parts of the agents: tool schemas and hostile arguments, output validation,
source priority, prices, the scripted adapter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

from treadle.agents import PriceTable, Usage, tool
from treadle.agents.adapters import resolve
from treadle.agents.messages import Message, ModelRequest, clean_text
from treadle.agents.output import OutputSpec
from treadle.agents.sources import Source, assemble
from treadle.agents.tools import ToolArgumentError, parse_arguments
from treadle.core.errors import ConfigurationError, Permanent, RateLimited


@tool
def search(query: str, limit: int = 5, mode: Literal["fast", "deep"] = "fast") -> list[str]:
    """Search the catalogue.

    Args:
        query: what to look for
        limit: how many results
    """
    return [query] * limit


def test_schema_from_signature_and_docstring() -> None:
    assert search.description == "Search the catalogue."
    props = search.parameters["properties"]
    assert props["query"] == {"description": "what to look for", "title": "Query",
                              "type": "string"}
    assert props["limit"]["default"] == 5 and props["mode"]["enum"] == ["fast", "deep"]
    assert search.parameters["required"] == ["query"]
    assert search.parse('{"query": "mug"}') == {"query": "mug", "limit": 5, "mode": "fast"}


@pytest.mark.parametrize("raw", [
    '{"query": ', "[1]", '{"query": "x", "extra": 1}', '{"limit": 2}', '{"query": 5}',
    '{"query": "x", "mode": "slow"}', "[" * 10_000 + "]" * 10_000, "x" * (300 << 10),
])
def test_hostile_arguments_are_refused_with_a_message(raw: str) -> None:
    with pytest.raises(ToolArgumentError) as err:
        search.parse(raw)
    assert str(err.value)


def test_arguments_depth_ignores_brackets_in_strings() -> None:
    assert parse_arguments(json.dumps({"q": "[" * 1000})) == {"q": "[" * 1000}
    assert parse_arguments("") == {}


def test_clean_text() -> None:
    assert clean_text("a\ud800b\x00") == "a?b\ufffd"
    assert clean_text("x" * 20, limit=10).startswith("x" * 10 + "\n[truncated: 10")


class Copy(BaseModel):
    title: str
    body: str


def test_output_validation() -> None:
    spec = OutputSpec(Copy, validators=[lambda v: v["title"] != "" or 1 / 0])
    assert spec.validate('```json\n{"title": "t", "body": "b"}\n```') == (
        {"title": "t", "body": "b"}, [])
    assert spec.validate("nope")[1][0].startswith("the answer is not valid JSON")
    assert spec.validate('{"title": "t"}')[1] == ["body: Field required"]
    assert spec.validate('{"title": "", "body": "b"}')[1][0].startswith("<lambda>")
    assert spec.validate("[" * 5000 + "]" * 5000)[1][0].endswith("levels")
    js = OutputSpec({"type": "object", "required": ["n"],
                     "properties": {"n": {"type": "integer", "minimum": 1}}})
    assert js.validate('{"n": 2}') == ({"n": 2}, [])
    assert js.validate('{"n": 0}')[1] == ["n: 0 is less than the minimum of 1"]
    with pytest.raises(ConfigurationError):
        OutputSpec({"type": "nonsense"})
    assert OutputSpec(None).validate("free text") == ("free text", [])


def test_source_priority_under_a_budget() -> None:
    docs = [Source("manual", "m" * 4000, priority=5), Source("faq", "f" * 400, priority=20)]
    conversation: list[Message] = [
        {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "name": "t",
                                                              "arguments": "{}"}]},
        {"role": "tool", "tool_call_id": "1", "name": "t", "content": "r" * 800,
         "is_error": False},
    ]
    msgs, record = assemble("the input", docs, conversation, budget=500)
    assert msgs[0]["content"].startswith("the input")
    assert '<document name="faq">' in msgs[0]["content"]  # priority 20: whole
    assert msgs[2]["content"] == "r" * 800  # tool results (50) before documents
    assert [t["source"] for t in record["trimmed"]] == ["manual"]
    assert record["dropped"] == []
    msgs, record = assemble("the input", docs, conversation, budget=60)
    assert record["dropped"] == ["faq", "manual"]
    assert msgs[2]["content"].startswith("r" * 10) and "[trimmed" in msgs[2]["content"]
    full, none = assemble("in", docs, conversation, budget=None)
    assert none == {} and "m" * 4000 in full[0]["content"]


def test_prices() -> None:
    table = PriceTable({"my-model": (1.0, 2.0)})
    assert table.cost("my-model", Usage(1_000_000, 500_000)) == 2.0
    assert table.cost("gpt-4.1-mini-2025-04-14", Usage(1_000_000, 0)) == 0.4
    assert table.cost("unknown", Usage(10, 10)) == 0.0


def test_scripted_file_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"responses": [
        {"content": "hi {input}", "error": {"class": "rate_limited", "retry_after": 3}}]}))
    adapter = resolve(f"scripted:{path}")
    req = ModelRequest("", [{"role": "user", "content": "bob"}], [], turn=0)
    with pytest.raises(RateLimited) as rl:
        adapter.complete(req)
    assert rl.value.retry_after == 3
    assert adapter.complete(req).text == "hi bob"
    with pytest.raises(Permanent):
        adapter.complete(ModelRequest("", [], [], turn=1))
    with pytest.raises(ConfigurationError):
        resolve("gpt-4")
    with pytest.raises(ConfigurationError):
        resolve(f"scripted:{tmp_path / 'missing.json'}")
