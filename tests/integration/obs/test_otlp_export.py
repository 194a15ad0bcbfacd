"""The CLI's OTLP export (ADR 0021): ``treadle worker --otel`` with the standard endpoint
variable sends the run's spans, as OTLP/HTTP protobuf, to a collector (here a local HTTP
receiver that decodes them with OpenTelemetry's own protobuf classes)."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support.pg import free_port
from treadle import Treadle

ROOT = Path(__file__).resolve().parents[3]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
HEADER = f"00-{TRACE}-00f067aa0ba902b7-01"


def test_worker_exports_its_spans_over_otlp(tmp_path: Path) -> None:
    received: list[tuple[str, bytes]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"sqlite:///{tmp_path}/t.db"
    app = Treadle(url)
    app.migrate()
    # A job submitted under a web request's trace, as the API stores it.
    from treadle.core.job import NewJob

    (enq,) = app.store.enqueue([NewJob(task="echo", payload={"a": 1}, traceparent=HEADER)])
    app.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
           "OTEL_SERVICE_NAME": "obs-test-worker"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "treadle", "worker", "--app", "tests.e2e.api.tasks_app:app",
             "--db", url, "--burst", "--otel"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr[-3000:]
    spans = []
    for path, body in received:
        assert path == "/v1/traces"
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            service = {a.key: a.value.string_value for a in rs.resource.attributes}
            assert service["service.name"] == "obs-test-worker"
            for ss in rs.scope_spans:
                spans.extend(ss.spans)
    by_name = {s.name: s for s in spans}
    assert {"claim echo", "run echo"} <= set(by_name), sorted(by_name)
    run = by_name["run echo"]
    assert run.trace_id.hex() == TRACE and run.parent_span_id.hex() == "00f067aa0ba902b7"
    ids = {a.key: a.value.int_value for a in run.attributes if a.key == "treadle.job_id"}
    assert ids == {"treadle.job_id": enq.job.id}
