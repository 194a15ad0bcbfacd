"""Media URL sources (``POST /v1/media``) as an SSRF path (ADRs 0305, 0006): loopback and
private addresses in every spelling, credentials in the URL and dot-segment paths are
refused by the egress policy at submit, with no job stored; at fetch time (a name that
only resolves to a private address, a redirect to loopback) nothing is written."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.e2e.api.conftest import ADMIN_KEY, tenant_keys
from treadle import Treadle
from treadle.api import ApiConfig
from treadle.api.app import create_app
from treadle.artifacts import LocalArtifactStore
from treadle.core.errors import InvalidInput
from treadle.egress import EgressPolicy

pytest.importorskip("av", reason="the media extra (PyAV) is not installed")

from treadle.media import register
from treadle.media.sources import fetch_url


@pytest.fixture
def media(db_url: str, tmp_path: Path) -> Iterator[tuple[Treadle, TestClient, dict[str, str]]]:
    app = Treadle(db_url)
    app.configure_artifacts(LocalArtifactStore(tmp_path / "blobs"))
    register(app)
    app.migrate()
    app.egress = EgressPolicy()  # the default: nothing private, nothing loopback
    keys = tenant_keys(app)
    client = TestClient(create_app(app, ApiConfig(admin_key=ADMIN_KEY)))
    try:
        yield app, client, {"Authorization": f"Bearer {keys['a']}"}
    finally:
        client.close()
        app.close()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/x.mp4", "http://localhost/x.mp4", "http://LOCALHOST./x.mp4",
    "http://[::1]/x.mp4", "http://127.1/x.mp4", "http://2130706433/x.mp4",
    "http://0x7f000001/x.mp4", "http://0177.0.0.1/x.mp4", "http://0.0.0.0/x.mp4",
    "http://[::ffff:127.0.0.1]/x.mp4", "http://[::]/x.mp4",
    "http://10.0.0.1/x.mp4", "http://192.168.1.1/x.mp4", "http://172.16.0.1/x.mp4",
    "http://169.254.169.254/latest/meta-data/", "http://[fd00::1]/x.mp4",
    "http://metadata.google.internal/computeMetadata/v1/", "http://db.local/x.mp4",
    "http://user:pw@example.com/x.mp4", "http://user@example.com/x.mp4",
    "http://example.com@127.0.0.1/x.mp4", "http://127.0.0.1/../../etc/passwd",
    "http://127.0.0.1/%2e%2e/%2e%2e/etc/passwd", "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO", "ftp://example.com/x.mp4", "http:///x.mp4",
    "http://127.0.0.1\x00.example.com/x.mp4", "http://\udcff.example.com/x.mp4",
])
def test_refused_url_sources_store_nothing(
    media: tuple[Treadle, TestClient, dict[str, str]], tmp_path: Path, url: str
) -> None:
    app, client, auth = media
    body = '{"source": {"url": ' + json.dumps(url) + '}, "renditions": ["144p"]}'
    r = client.post("/v1/media", content=body.encode(),
                    headers={**auth, "Content-Type": "application/json"})
    assert r.status_code == 422, (url, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert app.list_jobs() == []
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []


class _Serve(BaseHTTPRequestHandler):
    hits: list[str] = []
    target = ""

    def do_GET(self) -> None:
        _Serve.hits.append(self.path)
        if self.path.startswith("/hop"):
            self.send_response(302)
            self.send_header("Location", _Serve.target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", "6")
        self.end_headers()
        self.wfile.write(b"secret")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Serve)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Serve.hits.clear()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def test_a_name_that_resolves_to_loopback_is_refused_at_fetch(tmp_path: Path,
                                                              loopback: int) -> None:
    """Passes the submit check (no literal address), refused once resolved."""
    resolved = {"media.example.test": ["127.0.0.1"], "mixed.example.test": ["10.0.0.5"],
                "rebind.example.test": ["93.184.216.34", "127.0.0.1"]}
    policy = EgressPolicy(resolver=lambda host, port: resolved[host])
    for host in resolved:
        url = f"http://{host}:{loopback}/clip.mp4"
        policy.check_static(url)
        with pytest.raises(InvalidInput, match="source URL"):
            fetch_url(url, tmp_path / "work", policy)
        assert list((tmp_path / "work").iterdir()) == []
    assert _Serve.hits == []


def test_a_redirect_to_loopback_is_not_followed(tmp_path: Path) -> None:
    """An allowed host (127.0.0.2 here) that redirects to a refused one (127.0.0.1)."""
    refused = ThreadingHTTPServer(("127.0.0.1", 0), _Serve)
    allowed = ThreadingHTTPServer(("127.0.0.2", 0), _Serve)
    _Serve.target = f"http://127.0.0.1:{refused.server_address[1]}/secret"
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (refused, allowed)]
    for t in threads:
        t.start()
    _Serve.hits.clear()
    try:
        with pytest.raises(InvalidInput, match="HTTP 302"):
            fetch_url(f"http://127.0.0.2:{allowed.server_address[1]}/hop",
                      tmp_path / "work", EgressPolicy.parse("127.0.0.2/32"))
        assert list((tmp_path / "work").iterdir()) == []
        assert _Serve.hits == ["/hop"]  # the redirect's target was never asked
    finally:
        for srv in (refused, allowed):
            srv.shutdown()
            srv.server_close()
        for t in threads:
            t.join(10)
