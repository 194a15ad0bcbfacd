"""URL sources: fetched under the egress policy, streamed to disk (never whole in memory),
capped, and refused cleanly. A real HTTP server on loopback, opened by the policy."""

from __future__ import annotations

import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from treadle import Treadle
from treadle.artifacts import LocalArtifactStore
from treadle.core.errors import InvalidInput
from treadle.egress import EgressPolicy
from treadle.media import register, submit
from treadle.media.sources import fetch_url
from treadle.testing import run_worker

BIG = 48 << 20  # streamed in 64 KiB chunks by the server


@pytest.fixture(scope="module")
def server(clip_bytes: bytes) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/big"):
                self.send_response(200)
                self.send_header("Content-Length", str(BIG))
                self.end_headers()
                chunk = b"\0" * (64 << 10)
                for _ in range(BIG // len(chunk)):
                    self.wfile.write(chunk)
                return
            body = clip_bytes if self.path.startswith("/clip.mp4") else b"missing"
            self.send_response(200 if self.path.startswith("/clip.mp4") else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture(scope="module")
def clip_bytes(clip: Path) -> bytes:
    return clip.read_bytes()


OPEN = EgressPolicy.parse("127.0.0.1/32")  # what TREADLE_EGRESS_ALLOW would open


def test_a_url_source_is_processed(db_url: str, tmp_path: Path, server: str) -> None:
    app = Treadle(db_url, artifacts=LocalArtifactStore(tmp_path / "blobs"), egress=OPEN)
    register(app)
    app.migrate()
    try:
        with run_worker(app):
            job = submit(app, {"url": f"{server}/clip.mp4?x=1"}, renditions="144p",
                         thumbnails=1).wait(120)
        assert job.status.value == "succeeded", job.error
        names = [a.name for a in app.job_artifacts(job.id)]
        assert "source/clip.mp4" in names and "renditions/144p.mp4" in names
    finally:
        app.close()


def test_the_body_streams_to_disk_not_memory(tmp_path: Path, server: str) -> None:
    tracemalloc.start()
    try:
        path = fetch_url(f"{server}/big", tmp_path, OPEN, max_bytes=BIG)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert path.stat().st_size == BIG
    assert peak < 8 << 20, f"peak {peak >> 20} MiB held in memory for a {BIG >> 20} MiB body"


@pytest.mark.parametrize(("path", "cap", "message"), [
    ("/big", 1 << 20, "source URL: "),          # over the cap: refused mid-body
    ("/nothing.mp4", 1 << 20, "source URL answered HTTP 404"),
])
def test_oversized_or_failing_urls_leave_no_file(tmp_path: Path, server: str, path: str,
                                                  cap: int, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        fetch_url(f"{server}{path}", tmp_path / "work", OPEN, max_bytes=cap)
    assert list((tmp_path / "work").iterdir()) == []


def test_private_addresses_are_refused_by_default(tmp_path: Path, server: str) -> None:
    with pytest.raises(InvalidInput, match="source URL: "):
        fetch_url(f"{server}/clip.mp4", tmp_path, EgressPolicy())
    assert [p for p in tmp_path.iterdir()] == []


def test_the_cap_is_configured_at_registration(db_url: str, tmp_path: Path) -> None:
    from treadle.core.errors import ConfigurationError

    app = Treadle(db_url, artifacts=LocalArtifactStore(tmp_path / "blobs"))
    try:
        with pytest.raises(ConfigurationError):
            register(app, max_url_bytes=0)
        wf: Any = register(app, max_url_bytes=5 << 20)
        assert wf.media_steps.max_url_bytes == 5 << 20
    finally:
        app.close()
