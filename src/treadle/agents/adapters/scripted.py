"""``scripted:<file>``: replays a file of responses (offline demos and tests).

The file is JSON: a list of responses, or ``{"responses": [...], "loop": true}`` (after the
last one, start again: a model that never stops). Each response::

    {"content": "text", "tool_calls": [{"name": "lookup", "arguments": {"sku": "A1"}}],
     "usage": {"input_tokens": 120, "output_tokens": 30}, "delay": 0.0,
     "error": {"class": "rate_limited", "retry_after": 1, "times": 1}}

Response ``n`` answers model call ``n`` of a run (the turn index, so a resumed run gets
the same answers). In ``content`` and ``arguments``, ``{input}`` is the run's input and
``{last_tool}`` the last tool result, ``{input_json}``/``{last_tool_json}`` the same
JSON-escaped (so one script serves many inputs).
``arguments`` may also be a raw string, to play a model that sends malformed JSON.
Missing usage is estimated from the text. ``error`` makes the call fail ``times`` times
first (counted per process), to exercise classification and retries.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from treadle.agents.messages import (
    ModelRequest,
    ModelResponse,
    ToolCall,
    Usage,
    estimate_tokens,
)
from treadle.core.errors import (
    ConfigurationError,
    ErrorClass,
    InvalidInput,
    Permanent,
    RateLimited,
    Transient,
    TreadleError,
)

MAX_SCRIPT_BYTES = 8 << 20


class ScriptedAdapter:
    def __init__(self, responses: Sequence[Mapping[str, Any]], *, loop: bool = False,
                 model: str = "scripted") -> None:
        if not responses:
            raise ConfigurationError("a script needs at least one response")
        self.responses = [dict(r) for r in responses]
        self.loop = loop
        self._model = model
        self._failures: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        return self._model

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedAdapter:
        p = Path(path)
        try:
            if p.stat().st_size > MAX_SCRIPT_BYTES:
                raise ConfigurationError(f"script {p} is over {MAX_SCRIPT_BYTES} bytes")
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read script {p}: {exc}") from None
        if isinstance(data, dict):
            return cls(data.get("responses") or [], loop=bool(data.get("loop")),
                       model=str(data.get("model") or "scripted"))
        if not isinstance(data, list):
            raise ConfigurationError(f"script {p} must be a JSON list or object")
        return cls(data)

    def complete(self, request: ModelRequest) -> ModelResponse:
        n = request.turn
        if n >= len(self.responses):
            if not self.loop:
                raise Permanent(f"the script has {len(self.responses)} responses; "
                                f"call #{n} has none")
            n %= len(self.responses)
        spec = self.responses[n]
        self._maybe_fail(request.turn, spec.get("error"))
        if spec.get("delay"):
            time.sleep(float(spec["delay"]))
        subs = _substitutions(request)
        text = _fill(str(spec.get("content") or ""), subs)
        calls = []
        for i, c in enumerate(spec.get("tool_calls") or []):
            args = c.get("arguments", {})
            raw = _fill(args, subs) if isinstance(args, str) else json.dumps(_fill_json(args, subs))
            calls.append(ToolCall(str(c.get("id") or f"call_{request.turn}_{i}"),
                                  str(c["name"]), raw))
        usage = spec.get("usage") or {}
        prompt = sum(estimate_tokens(str(m.get("content") or "")) for m in request.messages)
        return ModelResponse(
            text, tuple(calls),
            Usage(int(usage.get("input_tokens", prompt + estimate_tokens(request.system))),
                  int(usage.get("output_tokens", estimate_tokens(text) + 10 * len(calls)))),
            stop="tool_calls" if calls else "end", model=self._model)

    def _maybe_fail(self, turn: int, error: Any) -> None:
        if not isinstance(error, Mapping):
            return
        key = (turn, id(error))
        with self._lock:
            seen = self._failures.get(key, 0)
            if seen >= int(error.get("times", 1)):
                return
            self._failures[key] = seen + 1
        cls = ErrorClass(error.get("class", "transient"))
        message = str(error.get("message") or f"scripted {cls.value}")
        exc: TreadleError
        if cls is ErrorClass.RATE_LIMITED:
            exc = RateLimited(message, retry_after=error.get("retry_after"))
        elif cls is ErrorClass.INVALID_INPUT:
            exc = InvalidInput(message)
        elif cls is ErrorClass.PERMANENT:
            exc = Permanent(message)
        else:
            exc = Transient(message)
        raise exc


def _substitutions(request: ModelRequest) -> dict[str, str]:
    first = request.messages[0].get("content", "") if request.messages else ""
    last_tool = next((str(m.get("content", "")) for m in reversed(request.messages)
                      if m.get("role") == "tool"), "")
    text = str(first).split("\n\n<document", 1)[0]
    return {"{input}": text, "{last_tool}": last_tool,
            # JSON-escaped (without the quotes), to build JSON answers from them
            "{input_json}": json.dumps(text)[1:-1], "{last_tool_json}": json.dumps(last_tool)[1:-1]}


def _fill(text: str, subs: Mapping[str, str]) -> str:
    for k, v in subs.items():
        text = text.replace(k, v)
    return text


def _fill_json(value: Any, subs: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _fill(value, subs)
    if isinstance(value, list):
        return [_fill_json(v, subs) for v in value]
    if isinstance(value, dict):
        return {k: _fill_json(v, subs) for k, v in value.items()}
    return value
