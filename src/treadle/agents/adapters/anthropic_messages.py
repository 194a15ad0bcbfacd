"""``anthropic:<model>``: the official ``anthropic`` SDK speaking the Messages API.

The SDK reads its own ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL`` (or pass
``client=`` / ``base_url=``). ``stream=True`` reads the answer through the SDK's
streaming helper (server-sent events, tool input arriving as JSON pieces).
"""

from __future__ import annotations

import json
from typing import Any

from treadle.agents.adapters.errors import UNREADABLE, connection_error, from_status, unreadable
from treadle.agents.adapters.sdk import SdkAdapter
from treadle.agents.messages import (
    Message,
    ModelRequest,
    ModelResponse,
    ToolCall,
    Usage,
    token_count,
)
from treadle.core.errors import TreadleError

SERVER = "anthropic"
DEFAULT_MAX_TOKENS = 4096  # the Messages API requires a bound on the answer
_STOP = {"end_turn": "end", "stop_sequence": "end", "tool_use": "tool_calls",
         "max_tokens": "length"}


class AnthropicAdapter(SdkAdapter):
    sdk = "anthropic"
    client_class = "Anthropic"

    def __init__(self, model: str, *, client: Any = None, stream: bool = False,
                 max_retries: int = 0, max_tokens: int = DEFAULT_MAX_TOKENS,
                 **client_options: Any) -> None:
        super().__init__(model, client=client, stream=stream, max_retries=max_retries,
                         **client_options)
        self.max_tokens = max_tokens

    def complete(self, request: ModelRequest) -> ModelResponse:
        import anthropic

        kwargs: dict[str, Any] = {
            "model": self._model, "messages": to_anthropic(request.messages),
            "max_tokens": request.max_output_tokens or self.max_tokens}
        if request.system:
            kwargs["system"] = request.system
        if request.tools:
            kwargs["tools"] = [{"name": t.name, "description": t.description,
                                "input_schema": t.parameters} for t in request.tools]
        if request.timeout is not None:
            kwargs["timeout"] = request.timeout
        try:
            if self.stream:
                with self.client().messages.stream(**kwargs) as stream:
                    message = stream.get_final_message()
            else:
                message = self.client().messages.create(**kwargs)
        except anthropic.APIStatusError as exc:
            raise from_status(exc.status_code, exc.message, dict(exc.response.headers),
                              exc.body, server=SERVER) from None
        except (anthropic.APIConnectionError, anthropic.APITimeoutError) as exc:
            raise connection_error(exc, server=SERVER) from None
        except TreadleError:
            raise
        except anthropic.AnthropicError as exc:
            raise from_status(400, str(exc), server=SERVER) from None
        except UNREADABLE as exc:  # not JSON, nested past the parser
            raise unreadable(exc, server=SERVER) from None
        try:
            return self._response(message)
        except UNREADABLE as exc:  # JSON, but not the shape of a Messages answer
            raise unreadable(exc, server=SERVER) from None

    def _response(self, message: Any) -> ModelResponse:
        text: list[str] = []
        calls: list[ToolCall] = []
        for block in message.content or []:
            if block.type == "text":
                text.append(block.text if isinstance(block.text, str) else str(block.text))
            elif block.type == "tool_use":
                calls.append(ToolCall(str(block.id), str(block.name), _arguments(block.input)))
        usage = message.usage
        stop = message.stop_reason
        return ModelResponse("".join(text), tuple(calls),
                             Usage(token_count(usage.input_tokens),
                                   token_count(usage.output_tokens)),
                             _STOP.get(stop, "end") if isinstance(stop, str) else "end",
                             str(message.model or self._model))


def to_anthropic(messages: Any) -> list[dict[str, Any]]:
    """Neutral messages as Messages-API turns: tool results are user turns of
    ``tool_result`` blocks, and consecutive turns of one role are merged (the API
    requires alternation)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        role, blocks = _blocks(m)
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _blocks(m: Message) -> tuple[str, list[dict[str, Any]]]:
    if m["role"] == "assistant":
        blocks: list[dict[str, Any]] = []
        if m.get("content"):
            blocks.append({"type": "text", "text": m["content"]})
        for c in m.get("tool_calls") or []:
            blocks.append({"type": "tool_use", "id": c["id"], "name": c["name"],
                           "input": _input(c["arguments"])})
        return "assistant", blocks or [{"type": "text", "text": "(no answer)"}]
    if m["role"] == "tool":
        return "user", [{"type": "tool_result", "tool_use_id": m["tool_call_id"],
                         "content": m["content"] or "(empty)",
                         "is_error": bool(m.get("is_error"))}]
    return "user", [{"type": "text", "text": m["content"] or "(empty)"}]


def _arguments(value: Any) -> str:
    """A tool_use input as the raw JSON text the loop validates. Input that has no JSON
    (NaN, too deep) stays text that is not JSON: the model is told, as for any bad call."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return "(tool input that is not JSON)"


def _input(arguments: str) -> dict[str, Any]:
    """tool_use input must be an object: arguments the model sent malformed (already
    answered with an error) are replayed as what they were, wrapped."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except (ValueError, RecursionError):
        return {"_unparsed": arguments[:1000]}
    return value if isinstance(value, dict) else {"_value": value}
