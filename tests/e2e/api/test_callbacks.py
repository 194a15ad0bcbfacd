"""Callbacks: a finished job's record is POSTed, signed, to a real local HTTP receiver,
by a durable delivery job that retries with backoff while the receiver is down."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.e2e.api.conftest import WEBHOOK_SECRET, Api, wait_finished
from tests.support.pg import free_port
from treadle.store import JobFilter
from treadle.webhooks import DELIVER_TASK, SignatureError, verify


@dataclass
class Receiver:
    port: int
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    fail_with: int | None = None  # answer this status instead of 204
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                rec.received.append((dict(self.headers.items()), body))
                self.send_response(rec.fail_with or 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait(self, n: int = 1, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < n:
            assert time.monotonic() < deadline, f"got {len(self.received)} callbacks, want {n}"
            time.sleep(0.02)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    yield r
    r.stop()


def _deliveries(api: Api) -> list[object]:
    return list(api.treadle.list_jobs(JobFilter(task=DELIVER_TASK)))


def test_callback_is_delivered_and_signed(api: Api, worker: object, receiver: Receiver) -> None:
    receiver.start()
    with api.client() as c:
        job = c.post("/v1/jobs", json={"task": "add", "payload": {"a": 2, "b": 2},
                                       "callback_url": receiver.url}).json()
        final = wait_finished(c, job["id"])
    receiver.wait(1)
    headers, body = receiver.received[0]
    verify(WEBHOOK_SECRET, body, headers)  # raises if wrong
    sent = json.loads(body)
    assert sent["id"] == job["id"] and sent["status"] == "succeeded" and sent["result"] == 4
    # The callback carries the stored record; `waiting_on` (the live explanation for queued
    # jobs) and `progress` (the latest heartbeat's report) are the API's live fields, not
    # part of the record.
    live = ("waiting_on", "progress")
    record = {k: v for k, v in final.items() if k not in live}
    assert final["waiting_on"] is None and final["progress"] is None
    assert sent == {**record, "result": 4}
    assert headers["Treadle-Job-Id"] == str(job["id"])
    assert headers["Content-Type"] == "application/json"
    # tampering with one byte, a wrong secret or an old timestamp all fail verification
    with pytest.raises(SignatureError):
        verify(WEBHOOK_SECRET, body.replace(b'"result":4', b'"result":5'), headers)
    with pytest.raises(SignatureError):
        verify("another-secret-xxxxxxxx", body, headers)
    with pytest.raises(SignatureError):
        verify(WEBHOOK_SECRET, body, headers, now=time.time() + 3600)
    with pytest.raises(SignatureError):
        verify(WEBHOOK_SECRET, body, {})


def test_failed_job_is_called_back_too(api: Api, worker: object, receiver: Receiver) -> None:
    receiver.start()
    with api.client() as c:
        job = c.post("/v1/jobs", json={"task": "boom", "callback_url": receiver.url}).json()
        wait_finished(c, job["id"])
    receiver.wait(1)
    sent = json.loads(receiver.received[0][1])
    assert sent["status"] == "failed" and sent["error"]["class"] == "permanent"


def test_receiver_down_then_up_is_retried(api: Api, worker: object,
                                           receiver: Receiver) -> None:
    # Nothing listens on the receiver's port yet: connection refused -> transient -> retry.
    with api.client() as c:
        job = c.post("/v1/jobs", json={"task": "echo", "payload": {"v": 1},
                                       "callback_url": receiver.url}).json()
        wait_finished(c, job["id"])
    deadline = time.monotonic() + 20
    while True:
        ds = api.treadle.list_jobs(JobFilter(task=DELIVER_TASK))
        if ds and ds[0].attempt >= 3:
            break
        assert time.monotonic() < deadline, f"delivery not retried: {ds}"
        time.sleep(0.05)
    assert ds[0].status.value in ("queued", "running")
    assert ds[0].error is not None and ds[0].error.error_class.value == "transient"
    receiver.start()  # back up
    receiver.wait(1)
    headers, body = receiver.received[0]
    verify(WEBHOOK_SECRET, body, headers)
    assert json.loads(body)["id"] == job["id"]
    delivery = wait_finished_job(api, ds[0].id)
    assert delivery.status.value == "succeeded" and delivery.attempt >= 3
    assert headers["Treadle-Delivery-Id"] == str(delivery.id)
    reasons = [e.reason for e in api.treadle.job_events(delivery.id)]
    assert reasons.count("retry") >= 2


def test_receiver_5xx_is_retried_4xx_is_not(api: Api, worker: object,
                                             receiver: Receiver) -> None:
    receiver.fail_with = 503
    receiver.start()
    with api.client() as c:
        job = c.post("/v1/jobs", json={"task": "noop", "callback_url": receiver.url}).json()
        wait_finished(c, job["id"])
        receiver.wait(2)
        receiver.fail_with = None
        receiver.wait(3)
        ok = wait_finished_job(api, _deliveries(api)[0].id)  # type: ignore[attr-defined]
        assert ok.status.value == "succeeded"
        receiver.fail_with = 410
        gone = c.post("/v1/jobs", json={"task": "noop", "callback_url": receiver.url}).json()
        wait_finished(c, gone["id"])
    receiver.wait(4)
    newest = api.treadle.list_jobs(JobFilter(task=DELIVER_TASK))[0]
    failed = wait_finished_job(api, newest.id)
    assert failed.status.value == "failed" and failed.attempt == 1
    assert failed.error is not None and failed.error.error_class.value == "permanent"


def wait_finished_job(api: Api, job_id: int, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    api.treadle.store.wait_for_finish([job_id], timeout)
    return api.treadle.get_job(job_id)
