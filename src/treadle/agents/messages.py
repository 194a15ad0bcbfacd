"""The neutral conversation format every adapter translates from and to.

Messages are plain JSON objects (they are stored as step results and replayed):

- ``{"role": "user", "content": str}``
- ``{"role": "assistant", "content": str, "tool_calls": [{"id", "name", "arguments"}]}``
  where ``arguments`` is the raw JSON text the model sent (validated later, never trusted)
- ``{"role": "tool", "tool_call_id": str, "name": str, "content": str, "is_error": bool}``
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from treadle.core.storable import finite

Message = dict[str, Any]

MAX_TEXT_CHARS = 1 << 20  # one model answer or tool result kept in the conversation


def clean_text(value: object, limit: int = MAX_TEXT_CHARS) -> str:
    """Model and tool text made storable on both backends: lone surrogates and NUL
    replaced (PostgreSQL's jsonb refuses both), bounded in size."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit] + f"\n[truncated: {len(text) - limit} characters dropped]"
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\x00", "\ufffd")


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # raw JSON text from the model

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolCall:
        return cls(str(data["id"]), str(data["name"]), str(data["arguments"]))


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class ToolSpec:
    """What a model is told about one tool."""

    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments object


@dataclass(frozen=True)
class ModelRequest:
    system: str
    messages: Sequence[Message]
    tools: Sequence[ToolSpec]
    turn: int  # 0-based index of this model call in the run (replays are deterministic)
    timeout: float | None = None  # seconds left for this call
    max_output_tokens: int | None = None


@dataclass(frozen=True)
class ModelResponse:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: Usage = field(default_factory=Usage)
    stop: str = "end"  # "end", "tool_calls", "length"
    model: str = ""

    def message(self) -> Message:
        # Ids, names and arguments are the model's too: bounded and storable (the
        # arguments are refused later if they are over the tools' limit).
        calls = [{"id": clean_text(c.id, 200), "name": clean_text(c.name, 200),
                  "arguments": clean_text(c.arguments, MAX_TEXT_CHARS)} for c in self.tool_calls]
        return {"role": "assistant", "content": clean_text(self.text), "tool_calls": calls}


class ModelAdapter(Protocol):
    """The seam between the agent loop and a model: one blocking call per turn.

    Raise classified errors (:class:`~treadle.core.errors.RateLimited`, ``Transient``,
    ``Permanent``, ``InvalidInput``); the step fails with that class and the job's retry
    policy decides (completed steps are never repeated)."""

    @property
    def model(self) -> str:
        """The model's name, as the price table knows it."""
        ...

    def complete(self, request: ModelRequest) -> ModelResponse: ...


MAX_TOKENS = 1 << 40  # more than any call reports; keeps sums far from 64 bits


def token_count(value: object) -> int:
    """A token count a server reported, as the run can keep it: a non-negative integer,
    bounded; what is no number (a string, NaN, ``10**400``) counts 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not finite(value):
        return 0
    return min(max(0, int(value)), MAX_TOKENS)


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters a token) for adapters that report none and for
    context budgets; never used where a server reported real usage."""
    return max(1, (len(text) + 3) // 4) if text else 0
