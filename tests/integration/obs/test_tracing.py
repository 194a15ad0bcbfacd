"""Traces end to end (ADR 0021): an HTTP submission carrying a W3C traceparent, a real
API server, a real worker and store, spans collected by the SDK's in-memory exporter."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.support.pg import free_port
from treadle import Treadle
from treadle.api import ApiConfig, start_in_thread
from treadle.core import traceparent
from treadle.core.errors import InvalidInput
from treadle.core.job import NewJob
from treadle.egress import EgressPolicy
from treadle.otel import OtelTracing
from treadle.testing import run_worker
from treadle.webhooks import register_builtin_tasks
from treadle.workflows import WorkflowContext

ADMIN = "obs-admin-key-0123456789"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
HEADER = f"00-{TRACE}-{PARENT}-01"


@dataclass
class Traced:
    app: Treadle
    spans: InMemorySpanExporter
    url: str

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        return [s for s in self.finished() if s.name.startswith(prefix)]


@pytest.fixture
def traced(db_url: str) -> Iterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = Treadle(db_url, tracing=OtelTracing(provider=provider))

    @app.task(name="echo")
    def echo(**payload: object) -> dict[str, object]:
        return payload

    @app.workflow(name="two_steps")
    def two_steps(ctx: WorkflowContext) -> int:
        a = ctx.step("first", lambda: 1)
        return int(ctx.step("second", lambda: a + 1))

    # Callbacks go to a receiver on loopback, which an operator would allow explicitly.
    app.egress = EgressPolicy.parse("127.0.0.1/32")
    register_builtin_tasks(app, "whsec-obs-0123456789abcdef")
    app.migrate()
    port = free_port()
    server = start_in_thread(app, port=port, config=ApiConfig(admin_key=ADMIN))
    try:
        yield Traced(app, exporter, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        time.sleep(0.05)
        app.close()
        provider.shutdown()


def _hex(n: int, width: int) -> str:
    return format(n, f"0{width}x")


def _wait_for(traced: Traced, name: str, timeout: float = 20.0) -> ReadableSpan:
    deadline = time.monotonic() + timeout
    while True:
        found = traced.named(name)
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no span {name!r}: {traced.finished()}"
        time.sleep(0.02)


def test_http_submission_continues_its_trace_through_the_worker(traced: Traced) -> None:
    with httpx.Client(base_url=traced.url, headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        r = c.post("/v1/jobs", json={"task": "echo", "payload": {"x": 1}},
                   headers={"traceparent": HEADER})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    with run_worker(traced.app):
        traced.app.store.wait_for_finish([job_id], 20)
        run = _wait_for(traced, "run echo")
    submit = _wait_for(traced, "submit echo")
    claim = _wait_for(traced, "claim echo")
    # The submit span is the request's child, in its trace.
    assert _hex(submit.context.trace_id, 32) == TRACE
    assert submit.parent is not None and _hex(submit.parent.span_id, 16) == PARENT
    # The job stores the submit span's context, canonical; the worker's spans hang off it.
    stored = traced.app.get_job(job_id).traceparent
    assert stored == f"00-{TRACE}-{_hex(submit.context.span_id, 16)}-01"
    for span in (claim, run):
        assert _hex(span.context.trace_id, 32) == TRACE
        assert span.parent is not None and span.parent.span_id == submit.context.span_id
    assert run.attributes is not None and run.attributes["treadle.job_id"] == job_id
    assert run.attributes["treadle.outcome"] == "succeeded"


def test_workflow_steps_are_spans_under_the_run(traced: Traced) -> None:
    handle = traced.app.defer("two_steps")
    with run_worker(traced.app):
        assert handle.wait(20).result == 2
        run = _wait_for(traced, "run two_steps")
    steps = {s.name: s for s in traced.named("step ")}
    assert set(steps) == {"step first", "step second"}
    for step in steps.values():
        assert step.context.trace_id == run.context.trace_id
        assert step.parent is not None and step.parent.span_id == run.context.span_id
    # Without a request around it, the library's defer still starts the trace: submit is
    # the root and the run its child.
    submit = _wait_for(traced, "submit two_steps")
    assert submit.parent is None and run.parent is not None
    assert run.parent.span_id == submit.context.span_id


def test_defer_inside_a_span_joins_that_trace(traced: Traced) -> None:
    tracer = traced.app.tracing.provider.get_tracer("test")  # type: ignore[attr-defined]
    with tracer.start_as_current_span("web request") as outer:
        handle = traced.app.defer("echo", {"y": 2})
    with run_worker(traced.app):
        handle.wait(20)
        run = _wait_for(traced, "run echo")
    assert run.context.trace_id == outer.get_span_context().trace_id


@pytest.mark.parametrize("bad", [
    "garbage", "00-" + "0" * 32 + "-" + PARENT + "-01", f"00-{TRACE.upper()}-{PARENT}-01",
    f"ff-{TRACE}-{PARENT}-01", f"00-{TRACE}-{PARENT}-01-extra", HEADER + "-" + "a" * 600,
    "\u00e9" + HEADER, "x" * 8000,
])
def test_a_hostile_traceparent_is_ignored_never_stored(traced: Traced, bad: str) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=traced.url, headers=headers) as c:
        # Raw bytes: non-ASCII reaches the server as sent (NUL cannot travel in HTTP; the
        # parser's own test covers it).
        r = c.post("/v1/jobs", json={"task": "echo"}, headers={b"traceparent": bad.encode()})
    assert r.status_code == 202, r.text
    stored = traced.app.get_job(r.json()["id"]).traceparent
    # A new trace was started by the submit span; nothing of the bad header was kept.
    assert stored is not None and traceparent.parse(stored) == stored
    assert TRACE not in stored


def test_an_oversized_header_is_refused_by_the_server_and_stores_nothing(
        traced: Traced) -> None:
    before = len(traced.app.list_jobs())
    with httpx.Client(base_url=traced.url, headers={"Authorization": f"Bearer {ADMIN}"}) as c:
        try:
            r = c.post("/v1/jobs", json={"task": "echo"},
                       headers={"traceparent": "0" * (50 << 20)})
            assert 400 <= r.status_code < 500
        except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError):
            pass  # the server closed the connection on the oversized head: also a refusal
    assert len(traced.app.list_jobs()) == before


def test_traceparent_parsing_is_strict_and_total() -> None:
    assert traceparent.parse(HEADER) == HEADER
    assert traceparent.parse(f"  {HEADER}\t") == HEADER
    # A later version is read by its first four fields and stored as version 00.
    assert traceparent.parse(f"01-{TRACE}-{PARENT}-01-more") == HEADER
    for bad in (None, 7, b"bytes", "", "\x00" * 55, HEADER.replace("-", "\x00"),
                "0" * (50 << 20), f"00-{TRACE}-{'0' * 16}-01"):
        assert traceparent.parse(bad) is None
    with pytest.raises(InvalidInput):
        NewJob(task="t", traceparent="garbage")
    with pytest.raises(InvalidInput):
        NewJob(task="t", traceparent=HEADER + "\x00")


def test_callback_delivery_is_a_span_in_the_jobs_trace(traced: Traced) -> None:
    received: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            received.append(self.headers.get("traceparent"))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        with httpx.Client(base_url=traced.url,
                          headers={"Authorization": f"Bearer {ADMIN}"}) as c:
            r = c.post("/v1/jobs", json={"task": "echo", "callback_url": url},
                       headers={"traceparent": HEADER})
        assert r.status_code == 202, r.text
        with run_worker(traced.app):
            delivery = _wait_for(traced, "callback delivery")
            deadline = time.monotonic() + 20
            while not received:
                assert time.monotonic() < deadline, "no callback received"
                time.sleep(0.02)
    finally:
        server.shutdown()
        server.server_close()
    assert _hex(delivery.context.trace_id, 32) == TRACE
    assert delivery.attributes is not None
    assert delivery.attributes["http.response.status_code"] == 204
    # The receiver can continue the same trace, from the delivery span.
    assert received[0] == f"00-{TRACE}-{_hex(delivery.context.span_id, 16)}-01"
