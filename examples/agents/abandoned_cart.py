"""Abandoned-cart follow-up: inbound webhook → agent → signed callback, offline.

    python -m examples.agents.abandoned_cart

The shop's webhook is a ``POST /v1/jobs`` to Treadle's API naming the agent, with a
``callback_url``; when the run finishes, Treadle POSTs the finished job (output and
report) to that URL, signed (``X-Treadle-Signature``, ADR 0303), from a durable delivery
job that retries. Here the shop, the API and the receiver all run on loopback.
"""

from __future__ import annotations

import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import uvicorn

from examples.agents.common import SCRIPTS, temp_db, worker
from treadle import Treadle
from treadle.agents import tool
from treadle.api import ApiConfig, create_app
from treadle.api.auth import keystore_for
from treadle.egress import EgressPolicy
from treadle.webhooks import register_builtin_tasks, verify

SECRET = "example-webhook-secret"  # in production: TREADLE_WEBHOOK_SECRET, read by the CLI


@tool
def customer_history(email: str) -> dict[str, Any]:
    """Orders and preferences of a customer."""
    return {"email": email, "orders": 3, "likes": "green glaze"}


def build(url: str) -> Treadle:
    # The receiver runs on loopback here; callbacks to private addresses are refused
    # unless allowed (ADR 0305: TREADLE_EGRESS_ALLOW=127.0.0.1/32 for `treadle` commands).
    app = Treadle(url, egress=EgressPolicy.parse("127.0.0.1/32"))
    app.agent(
        name="cart_followup", model=f"scripted:{SCRIPTS / 'cart.json'}",
        instructions="Draft a short, personal follow-up for an abandoned cart.",
        tools=[customer_history],
        output={"type": "object", "required": ["subject", "message"]},
        max_iterations=4, timeout=60,
    )
    register_builtin_tasks(app, SECRET)  # the callback delivery job
    return app


class Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def log_message(self, *args: Any) -> None:
        """Quiet."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        verify(SECRET, body, dict(self.headers))  # raises unless signed by Treadle
        import json

        Receiver.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()


def main(url: str | None = None) -> int:
    app = build(url or temp_db())
    _, key = keystore_for(app).create_key("shop-ganimarka", "submit,read")
    api = uvicorn.Server(uvicorn.Config(create_app(app, ApiConfig(webhook_secret=SECRET,
                                                                  admin_key="example-admin-key-0123456789")),
                                        host="127.0.0.1", port=0, log_level="warning"))
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    serving = threading.Thread(target=api.run, daemon=True)
    serving.start()
    while not api.started:
        time.sleep(0.05)
    port = api.servers[0].sockets[0].getsockname()[1]
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/treadle-callback"
    with worker(app):
        # The shop's "cart abandoned" webhook, pointed at Treadle:
        r = httpx.post(f"http://127.0.0.1:{port}/v1/jobs",
                       headers={"Authorization": f"Bearer {key}"},
                       json={"task": "cart_followup", "callback_url": hook,
                             "payload": {"input": {"email": "ada@example.com",
                                                   "cart": ["green mug", "teapot"]}}})
        print("webhook accepted:", r.status_code, r.json().get("id", r.text))
        deadline = time.monotonic() + 60
        while not Receiver.received and time.monotonic() < deadline:
            time.sleep(0.1)
    api.should_exit = True
    serving.join(10)  # the API closes its sockets, then the app its store
    receiver.shutdown()
    receiver.server_close()  # its listening socket
    app.close()
    if not Receiver.received:
        print("no callback received")
        return 1
    job = Receiver.received[0]
    print("signed callback verified; draft:", job["result"]["output"])
    print("report:", job["result"]["report"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
