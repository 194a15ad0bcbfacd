"""Fixtures for sandbox integration tests: real bwrap, real V8, real processes."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
try:
    import treadle.sandbox  # noqa: F401
except ImportError:  # running from a checkout without an editable install
    sys.path.insert(0, str(ROOT / "src"))

from treadle.sandbox import SandboxManager  # noqa: E402


def _ensure_bwrap() -> str | None:
    """None when bwrap is usable, else the reason to skip."""
    if shutil.which("bwrap") is None and os.geteuid() == 0:
        subprocess.run(["sh", str(ROOT / "scripts/deps/bubblewrap.sh")], check=False)
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed and could not be installed"
    return None


@pytest.fixture(scope="session")
def manager() -> Iterator[SandboxManager]:
    reason = _ensure_bwrap()
    if reason:
        pytest.skip(reason)
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
