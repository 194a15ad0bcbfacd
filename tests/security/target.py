"""A local HTTP target on loopback that records what reached it (egress tests)."""

from __future__ import annotations

import http.server
import posixpath
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Target:
    port: int
    seen: list[str] = field(default_factory=list)  # request paths, as received

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reached(self, fragment: str = "") -> bool:
        return any(fragment in p for p in self.seen)


@contextmanager
def loopback_target() -> Iterator[Target]:
    """Answers like a normalising web framework would: ``/ok/../secret`` is ``/secret``;
    ``/redirect`` sends a 302 to ``/secret``; every body says which path it served."""
    target = Target(0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            target.seen.append(self.path)
            path = posixpath.normpath(self.path.split("?")[0])
            if path == "/redirect":
                self.send_response(302)
                self.send_header("Location", f"{target.url}/secret")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = f'{{"served": "{path}"}}'.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    target.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield target
    finally:
        server.shutdown()
        server.server_close()
