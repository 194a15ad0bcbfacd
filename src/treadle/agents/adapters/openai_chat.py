"""``openai:<model>``: the official ``openai`` SDK speaking Chat Completions.

Works with every OpenAI-compatible server (vLLM, Ollama, LiteLLM): the SDK reads its own
``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` (or pass ``client=`` / ``base_url=``).
``stream=True`` reads the answer as server-sent events (tool-call arguments arrive in
pieces and are joined here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from treadle.agents.adapters.errors import UNREADABLE, connection_error, from_status, unreadable
from treadle.agents.adapters.sdk import SdkAdapter
from treadle.agents.messages import (
    Message,
    ModelRequest,
    ModelResponse,
    ToolCall,
    Usage,
    estimate_tokens,
    token_count,
)
from treadle.core.errors import TreadleError

SERVER = "openai"
_STOP = {"stop": "end", "tool_calls": "tool_calls", "function_call": "tool_calls",
         "length": "length"}


class OpenAIAdapter(SdkAdapter):
    sdk = "openai"
    client_class = "OpenAI"

    def complete(self, request: ModelRequest) -> ModelResponse:
        import openai

        kwargs: dict[str, Any] = {"model": self._model, "messages": to_openai(request)}
        if request.tools:
            kwargs["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": t.parameters}}
                for t in request.tools]
        if request.max_output_tokens is not None:
            kwargs["max_completion_tokens"] = request.max_output_tokens
        if request.timeout is not None:
            kwargs["timeout"] = request.timeout
        try:
            if self.stream:
                chunks = self.client().chat.completions.create(
                    stream=True, stream_options={"include_usage": True}, **kwargs)
                return self._from_stream(chunks, request)
            return self._from_completion(self.client().chat.completions.create(**kwargs),
                                         request)
        except openai.APIStatusError as exc:
            raise from_status(exc.status_code, exc.message, dict(exc.response.headers),
                              exc.body, server=SERVER) from None
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise connection_error(exc, server=SERVER) from None
        except TreadleError:
            raise
        except openai.OpenAIError as exc:  # no API key, a response it cannot read
            raise from_status(400, str(exc), server=SERVER) from None
        except UNREADABLE as exc:  # not JSON, nested past the parser, not the API's shape
            raise unreadable(exc, server=SERVER) from None

    def _from_completion(self, resp: Any, request: ModelRequest) -> ModelResponse:
        if not resp.choices:
            raise from_status(502, "the answer has no choices", server=SERVER)
        choice = resp.choices[0]
        msg = choice.message
        calls = tuple(ToolCall(str(tc.id), str(tc.function.name), tc.function.arguments or "")
                      for tc in (msg.tool_calls or []) if getattr(tc, "function", None))
        text = msg.content if isinstance(msg.content, str) else str(msg.content or "")
        return ModelResponse(text, calls, _usage(resp.usage, request, text),
                             _stop(choice.finish_reason), str(resp.model or self._model))

    def _from_stream(self, chunks: Iterable[Any], request: ModelRequest) -> ModelResponse:
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        finish, usage, model = "stop", None, self._model
        for chunk in chunks:
            model = str(getattr(chunk, "model", None) or model)
            if getattr(chunk, "usage", None) is not None:
                usage = chunk.usage
            for choice in chunk.choices or []:
                delta = choice.delta
                if delta is not None and delta.content:
                    text.append(delta.content)
                for tc in (delta.tool_calls if delta is not None else None) or []:
                    slot = calls.setdefault(int(tc.index), {"id": "", "name": "", "args": ""})
                    slot["id"] = tc.id or slot["id"]
                    if tc.function is not None:
                        slot["name"] += tc.function.name or ""
                        slot["args"] += tc.function.arguments or ""
                if choice.finish_reason:
                    finish = choice.finish_reason
        joined = "".join(text)
        out = tuple(ToolCall(c["id"] or f"call_{i}", c["name"], c["args"])
                    for i, c in sorted(calls.items()))
        return ModelResponse(joined, out, _usage(usage, request, joined), _stop(finish), model)


def _stop(reason: object) -> str:
    return _STOP.get(reason, "end") if isinstance(reason, str) else "end"


def _usage(usage: Any, request: ModelRequest, text: str) -> Usage:
    if usage is None:  # some compatible servers report none: estimate, never 0
        prompt = sum(estimate_tokens(str(m.get("content") or "")) for m in request.messages)
        return Usage(prompt + estimate_tokens(request.system), estimate_tokens(text))
    return Usage(token_count(usage.prompt_tokens), token_count(usage.completion_tokens))


def to_openai(request: ModelRequest) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if request.system:
        out.append({"role": "system", "content": request.system})
    out.extend(_message(m) for m in request.messages)
    return out


def _message(m: Message) -> dict[str, Any]:
    if m["role"] == "assistant":
        msg: dict[str, Any] = {"role": "assistant", "content": m.get("content") or None}
        calls: Sequence[Message] = m.get("tool_calls") or []
        if calls:
            msg["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["name"], "arguments": c["arguments"]}}
                                 for c in calls]
        elif msg["content"] is None:
            msg["content"] = ""
        return msg
    if m["role"] == "tool":
        return {"role": "tool", "tool_call_id": m["tool_call_id"], "content": m["content"]}
    return {"role": "user", "content": m["content"]}
