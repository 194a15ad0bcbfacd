"""A loopback stub of the OpenAI and Anthropic HTTP APIs, for offline tests and benches.

It speaks the real wire formats, so the official SDKs run their real code paths against
it: ``POST /v1/chat/completions`` (Chat Completions, plain and streamed with
``stream_options.include_usage``) and ``POST /v1/messages`` (Messages, plain and streamed
as ``message_start`` ... ``message_stop`` events), tool calls included::

    with StubLLM() as stub:
        stub.push({"tool_calls": [{"name": "lookup", "arguments": {"sku": "A1"}}]},
                  {"content": "done", "usage": {"input_tokens": 10, "output_tokens": 2}},
                  {"status": 429, "headers": {"retry-after": "7"}})
        OpenAIAdapter("gpt-4.1-mini", base_url=stub.openai_url, api_key="stub")

A reply is ``content``/``tool_calls``/``usage``, or ``status`` (+ ``headers``, ``message``,
``code``) for an error, and ``delay`` seconds; ``hang`` never answers (until stopped).
With no reply queued the stub answers ``default``. Every request body is kept in
``requests``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = Mapping[str, Any]


class StubLLM:
    def __init__(self, default: Reply | None = None) -> None:
        self.default: Reply = default or {"content": "ok"}
        self.requests: list[dict[str, Any]] = []
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="treadle-stub-llm")

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_url(self) -> str:
        return self.url

    def push(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(replies)

    def next_reply(self, body: dict[str, Any], path: str) -> Reply:
        with self._lock:
            self.requests.append({"path": path, "body": body})
            return self._replies.popleft() if self._replies else self.default

    def start(self) -> StubLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StubLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(stub: StubLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real servers: the SDKs pool
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms stall

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = {}
            path = self.path.split("?", 1)[0]
            reply = stub.next_reply(body, path)
            if reply.get("hang"):
                stub._stopped.wait()
                return
            if reply.get("delay"):
                time.sleep(float(reply["delay"]))
            anthropic = path.endswith("/messages")
            if path.endswith("/chat/completions"):
                status, headers, payload = _openai(body, reply)
            elif anthropic:
                status, headers, payload = _anthropic(body, reply)
            else:
                status, headers, payload = 404, {}, b'{"error": {"message": "not found"}}'
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def _usage(reply: Reply, body: Mapping[str, Any]) -> tuple[int, int]:
    usage = reply.get("usage") or {}
    prompt = len(json.dumps(body.get("messages", []))) // 4
    return int(usage.get("input_tokens", prompt)), int(usage.get("output_tokens", 5))


def _args(call: Mapping[str, Any]) -> str:
    a = call.get("arguments", {})
    return a if isinstance(a, str) else json.dumps(a)


def _error(reply: Reply, anthropic: bool) -> tuple[int, dict[str, str], bytes]:
    status = int(reply["status"])
    message = str(reply.get("message") or f"stub error {status}")
    headers = {"content-type": "application/json", **dict(reply.get("headers") or {})}
    if anthropic:
        kind = {429: "rate_limit_error", 400: "invalid_request_error",
                529: "overloaded_error"}.get(status, "api_error")
        body = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        body = {"error": {"message": message, "type": "invalid_request_error",
                          "code": reply.get("code")}}
    return status, headers, json.dumps(body).encode()


def _sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = []
    for name, data in events:
        text = data if isinstance(data, str) else json.dumps(data)
        out.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
    return "".join(out).encode()


def _openai(body: Mapping[str, Any], reply: Reply) -> tuple[int, dict[str, str], bytes]:
    if "status" in reply:
        return _error(reply, False)
    model = str(body.get("model", "stub"))
    content = str(reply.get("content") or "")
    calls = list(reply.get("tool_calls") or [])
    finish = "tool_calls" if calls else "stop"
    tin, tout = _usage(reply, body)
    usage = {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}
    base = {"id": "chatcmpl-stub", "created": 0, "model": model}
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if calls:
            message["tool_calls"] = [{"id": c.get("id") or f"call_{i}", "type": "function",
                                      "function": {"name": c["name"], "arguments": _args(c)}}
                                     for i, c in enumerate(calls)]
        doc = {**base, "object": "chat.completion", "usage": usage, "choices": [
            {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]}
        return 200, {"content-type": "application/json"}, json.dumps(doc).encode()
    chunk = {**base, "object": "chat.completion.chunk"}

    def delta(d: dict[str, Any], fin: str | None = None) -> tuple[str | None, Any]:
        return None, {**chunk, "choices": [{"index": 0, "delta": d, "finish_reason": fin}]}

    events = [delta({"role": "assistant", "content": ""})]
    events += [delta({"content": content[i:i + 8]}) for i in range(0, len(content), 8)]
    for i, c in enumerate(calls):
        events.append(delta({"tool_calls": [{"index": i, "id": c.get("id") or f"call_{i}",
                                             "type": "function", "function": {
                                                 "name": c["name"], "arguments": ""}}]}))
        raw = _args(c)
        events += [delta({"tool_calls": [{"index": i, "function": {"arguments": raw[j:j + 7]}}]})
                   for j in range(0, len(raw), 7)]
    events.append(delta({}, finish))
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append((None, {**chunk, "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return 200, {"content-type": "text/event-stream"}, _sse(events)


def _anthropic(body: Mapping[str, Any], reply: Reply) -> tuple[int, dict[str, str], bytes]:
    if "status" in reply:
        return _error(reply, True)
    model = str(body.get("model", "stub"))
    content = str(reply.get("content") or "")
    calls = list(reply.get("tool_calls") or [])
    stop = "tool_use" if calls else "end_turn"
    tin, tout = _usage(reply, body)
    blocks: list[dict[str, Any]] = [{"type": "text", "text": content}] if content else []
    blocks += [{"type": "tool_use", "id": c.get("id") or f"toolu_{i}", "name": c["name"],
                "input": json.loads(_args(c))} for i, c in enumerate(calls)]
    msg = {"id": "msg_stub", "type": "message", "role": "assistant", "model": model,
           "stop_sequence": None}
    if not body.get("stream"):
        doc = {**msg, "content": blocks, "stop_reason": stop,
               "usage": {"input_tokens": tin, "output_tokens": tout}}
        return 200, {"content-type": "application/json"}, json.dumps(doc).encode()
    events: list[tuple[str | None, Any]] = [("message_start", {"type": "message_start", "message": {
        **msg, "content": [], "stop_reason": None,
        "usage": {"input_tokens": tin, "output_tokens": 1}}})]
    for i, b in enumerate(blocks):
        if b["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}}))
            events += [("content_block_delta", {"type": "content_block_delta", "index": i,
                        "delta": {"type": "text_delta", "text": content[j:j + 8]}})
                       for j in range(0, len(content), 8)]
        else:
            events.append(("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {**b, "input": {}}}))
            raw = json.dumps(b["input"])
            events += [("content_block_delta", {"type": "content_block_delta", "index": i,
                        "delta": {"type": "input_json_delta", "partial_json": raw[j:j + 7]}})
                       for j in range(0, len(raw), 7)]
        events.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": tout}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return 200, {"content-type": "text/event-stream"}, _sse(events)
