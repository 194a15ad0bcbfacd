"""``cli:<command>``: a local command as the model (an LLM CLI, a local runner).

The conversation goes to the command's stdin as text; its stdout is the answer. A command
that prints one JSON object ``{"content": ..., "tool_calls": [{"name", "arguments"}],
"usage": {...}}`` can call tools too. The command runs in its own process group: when
the call's time is up the whole group is killed (a CLI that forks helpers leaves none
behind) and the call fails ``timeout``. Output is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import threading
from typing import IO, Any

from treadle.agents.messages import (
    ModelRequest,
    ModelResponse,
    ToolCall,
    Usage,
    estimate_tokens,
)
from treadle.core.errors import ConfigurationError, Permanent, Timeout, Transient

DEFAULT_TIMEOUT = 120.0
MAX_STDOUT = 4 << 20
MAX_STDERR = 16 << 10


class CliAdapter:
    def __init__(self, command: str, *, timeout: float = DEFAULT_TIMEOUT,
                 model: str | None = None) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise ConfigurationError("cli: needs a command")
        self.timeout = timeout
        self._model = model or os.path.basename(self.argv[0])

    @property
    def model(self) -> str:
        return self._model

    def complete(self, request: ModelRequest) -> ModelResponse:
        prompt = render_prompt(request)
        limit = self.timeout if request.timeout is None else min(self.timeout, request.timeout)
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            raise Permanent(f"cli: cannot run {self.argv[0]!r}: {exc}") from None
        out: list[bytes] = []
        err: list[bytes] = []
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        threads = [
            threading.Thread(target=_feed, args=(proc.stdin, prompt.encode()), daemon=True),
            threading.Thread(target=_drain, args=(proc.stdout, out, MAX_STDOUT), daemon=True),
            threading.Thread(target=_drain, args=(proc.stderr, err, MAX_STDERR), daemon=True)]
        for t in threads:
            t.start()
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise Timeout(f"cli: {self.argv[0]!r} did not answer within {limit:.1f}s; its "
                          "process group was killed") from None
        finally:
            for t in threads:
                t.join(2.0)
        stdout = b"".join(out).decode("utf-8", "replace")
        if code != 0:
            tail = b"".join(err).decode("utf-8", "replace")[-500:]
            raise Transient(f"cli: {self.argv[0]!r} exited with {code}: {tail}",
                            detail={"exit_code": code})
        return parse_output(stdout, request, self._model)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # the session leader's pid is the group id
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _feed(pipe: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(OSError):  # the command may exit without reading
        pipe.write(data)
    with contextlib.suppress(OSError):
        pipe.close()


def _drain(pipe: IO[bytes], sink: list[bytes], limit: int) -> None:
    """Keep the first ``limit`` bytes; read (and drop) the rest so the command never
    blocks on a full pipe. The pipe is closed here, at its end of file: only this thread
    reads it, and it may outlive the call (a helper that left the process group still
    holds the pipe open)."""
    kept = 0
    with contextlib.suppress(OSError, ValueError), pipe:
        while chunk := pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536):
            if kept < limit:
                sink.append(chunk[: limit - kept])
                kept += len(sink[-1])


def render_prompt(request: ModelRequest) -> str:
    parts = []
    if request.system:
        parts.append(f"[system]\n{request.system}")
    if request.tools:
        tools = [{"name": t.name, "description": t.description, "parameters": t.parameters}
                 for t in request.tools]
        parts.append("[tools]\nTo call tools, answer with one JSON object "
                     '{"tool_calls": [{"name": ..., "arguments": {...}}]}.\n'
                     + json.dumps(tools))
    for m in request.messages:
        if m["role"] == "assistant":
            body = m.get("content") or ""
            if m.get("tool_calls"):
                body += "\n" + json.dumps({"tool_calls": m["tool_calls"]})
            parts.append(f"[assistant]\n{body.strip()}")
        elif m["role"] == "tool":
            parts.append(f"[tool {m['name']} {m['tool_call_id']}]\n{m['content']}")
        else:
            parts.append(f"[user]\n{m['content']}")
    return "\n\n".join(parts) + "\n"


def parse_output(stdout: str, request: ModelRequest, model: str) -> ModelResponse:
    text = stdout.strip()
    data: Any = None
    if text.startswith("{") and len(text) < MAX_STDOUT:
        with contextlib.suppress(ValueError, RecursionError):
            data = json.loads(text)
    calls: tuple[ToolCall, ...] = ()
    usage: dict[str, Any] = {}
    if isinstance(data, dict) and ("content" in data or "tool_calls" in data):
        raw_calls = data.get("tool_calls") or []
        if isinstance(raw_calls, list):
            calls = tuple(
                ToolCall(str(c.get("id") or f"call_{request.turn}_{i}"), str(c.get("name")),
                         c["arguments"] if isinstance(c.get("arguments"), str)
                         else json.dumps(c.get("arguments", {})))
                for i, c in enumerate(raw_calls) if isinstance(c, dict))
        text = str(data.get("content") or "")
        raw_usage = data.get("usage")
        usage = raw_usage if isinstance(raw_usage, dict) else {}
    prompt_tokens = estimate_tokens(render_prompt(request))
    return ModelResponse(text, calls,
                         Usage(int(usage.get("input_tokens", prompt_tokens)),
                               int(usage.get("output_tokens", estimate_tokens(stdout)))),
                         "tool_calls" if calls else "end", model)
