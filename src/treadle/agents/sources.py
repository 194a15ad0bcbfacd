"""Context assembly by source priority under a token budget.

The ranked sources are the run's input, the documents passed in with it and the tool
results so far. Before every model call the context is assembled: sources in priority
order (newer tool results before older ones at equal priority) are kept whole while they
fit, the first that does not is trimmed to what is left, the rest are dropped; the
report records what was trimmed and dropped. The conversation's own turns (assistant
messages, repair requests) are always kept: a model must see what it said.

Deterministic (a pure function of the stored conversation), so replays assemble the same
context and no step is needed for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from treadle.agents.messages import Message, clean_text, estimate_tokens
from treadle.core.errors import InvalidInput

INPUT_PRIORITY = 100
TOOL_PRIORITY = 50
DOCUMENT_PRIORITY = 10
MIN_TRIM_TOKENS = 16  # below this a trimmed source is dropped instead
MAX_DOCUMENTS = 100


@dataclass(frozen=True)
class Source:
    name: str
    text: str
    priority: int = DOCUMENT_PRIORITY

    @classmethod
    def from_json(cls, data: Any, index: int) -> Source:
        if isinstance(data, str):
            return cls(f"document-{index}", clean_text(data))
        if not isinstance(data, Mapping) or not isinstance(data.get("text"), str):
            raise InvalidInput("each document is a string or {name, text, priority}")
        priority = data.get("priority", DOCUMENT_PRIORITY)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidInput("a document's priority must be an integer")
        return cls(str(data.get("name") or f"document-{index}")[:200],
                   clean_text(data["text"]), priority)


def parse_documents(raw: Any) -> list[Source]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_DOCUMENTS:
        raise InvalidInput(f"documents must be a list of at most {MAX_DOCUMENTS} items")
    return [Source.from_json(d, i) for i, d in enumerate(raw)]


@dataclass
class _Item:
    name: str
    text: str
    priority: int
    order: int  # tie-break: larger is newer
    slot: tuple[str, int]  # ("doc", i) / ("input", 0) / ("msg", index in conversation)


def assemble(
    input_text: str, documents: Sequence[Source], conversation: Sequence[Message],
    budget: int | None, fixed_tokens: int = 0,
) -> tuple[list[Message], dict[str, Any]]:
    """The messages to send and the record of what was trimmed or dropped."""
    items = [_Item("input", input_text, INPUT_PRIORITY, 0, ("input", 0))]
    items += [_Item(d.name, d.text, d.priority, 0, ("doc", i)) for i, d in enumerate(documents)]
    for i, m in enumerate(conversation):
        if m["role"] == "tool":
            items.append(_Item(f"tool:{m['name']}#{m['tool_call_id']}", m["content"],
                               TOOL_PRIORITY, i + 1, ("msg", i)))
    texts = {it.slot: it.text for it in items}
    record: dict[str, Any] = {}
    if budget is not None:
        # Turns that are always kept count first.
        left = budget - fixed_tokens - sum(
            estimate_tokens(str(m.get("content") or "")) + 8 * len(m.get("tool_calls") or [])
            for m in conversation if m["role"] != "tool")
        trimmed: list[dict[str, Any]] = []
        dropped: list[str] = []
        for it in sorted(items, key=lambda x: (-x.priority, -x.order)):
            need = estimate_tokens(it.text)
            if need <= left:
                left -= need
            elif left >= MIN_TRIM_TOKENS:
                keep = left * 4
                texts[it.slot] = it.text[:keep] + f"\n[trimmed: {len(it.text) - keep} chars]"
                trimmed.append({"source": it.name, "tokens": need, "kept_tokens": left})
                left = 0
            else:
                texts[it.slot] = ""
                dropped.append(it.name)
        record = {"budget": budget, "trimmed": trimmed, "dropped": dropped}
    first = texts[("input", 0)]
    docs = [f'<document name="{d.name}">\n{texts[("doc", i)]}\n</document>'
            for i, d in enumerate(documents) if texts[("doc", i)]]
    if docs:
        first = first + "\n\n" + "\n\n".join(docs)
    out: list[Message] = [{"role": "user", "content": first}]
    for i, m in enumerate(conversation):
        if m["role"] == "tool" and texts[("msg", i)] != m["content"]:
            m = {**m, "content": texts[("msg", i)] or "[dropped from context: over budget]"}
        out.append(m)
    return out, record
