"""Fixtures for sandbox integration tests: real bwrap, real V8, real processes."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.sandbox import require_bwrap
from treadle.sandbox import SandboxManager

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def manager() -> Iterator[SandboxManager]:
    require_bwrap()
    mgr = SandboxManager(python_pool_size=2, js_hosts=1, get_cache_capacity=16)
    mgr.warm_up()
    yield mgr
    mgr.close()


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"hello": "from the host"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def http_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
