"""``POST /v1/jobs``'s fast path (ADR 0026) answers exactly as the FastAPI route does.

The same requests go to one real server twice: once with the fast path on, once with it
off (the whole FastAPI stack). Status, headers and bodies must match, ids and times
aside; good requests create their job either way, refused ones create nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.api.conftest import ADMIN_KEY, Api, tenant_keys
from tests.e2e.api.tasks_app import build_app
from tests.support.pg import free_port
from treadle.api import ApiConfig, start_in_thread
from treadle.api.fastpath import TreadleAPI

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# Values that differ between two otherwise identical answers.
_VOLATILE = {"id", "created_at", "updated_at", "run_at", "idempotency_key", "traceparent"}


@pytest.fixture
def served(db_url: str) -> Iterator[tuple[Api, TreadleAPI]]:
    treadle = build_app(db_url)
    treadle.migrate()
    keys = tenant_keys(treadle)
    port = free_port()
    config = ApiConfig(admin_key=ADMIN_KEY, max_payload_bytes=4096)
    server = start_in_thread(treadle, host="127.0.0.1", port=port, config=config)
    app = server.config.app
    assert isinstance(app, TreadleAPI)
    try:
        yield Api(f"http://127.0.0.1:{port}", treadle, keys), app
    finally:
        server.should_exit = True
        time.sleep(0.05)
        treadle.close()


def _normal(r: httpx.Response) -> tuple[int, dict[str, str], Any]:
    try:
        body: Any = r.json()
    except ValueError:
        body = r.text
    if isinstance(body, dict):
        body = {k: ("<v>" if k in _VOLATILE and v is not None else v) for k, v in body.items()}
    headers = {k: v for k, v in r.headers.items() if k not in ("date", "location",
                                                                "content-length")}
    if "location" in r.headers:
        headers["location"] = r.headers["location"].rsplit("/", 1)[0]
    return r.status_code, headers, body


def _cases(mode: str) -> list[tuple[str, str | None, dict[str, str], bytes]]:
    """(name, key label, headers, body); idempotency keys are per mode, so each mode
    sees the same sequence of first uses, replays and conflicts."""
    good = json.dumps({"task": "add", "payload": {"a": 1, "b": 2}}).encode()
    other = json.dumps({"task": "add", "payload": {"a": 5, "b": 2}}).encode()
    js = {"Content-Type": "application/json"}
    return [
        ("admin", "admin", js, good),
        ("tenant key", "a", js, good),
        ("tenant key, queue and priority", "b", js,
         json.dumps({"task": "echo", "payload": {"x": "é"}, "queue": "q1",
                     "priority": 7, "delay": 30}).encode()),
        ("charset", "a", {"Content-Type": "application/json; charset=utf-8"}, good),
        ("traceparent", "a", {**js, "traceparent": TRACEPARENT}, good),
        ("bad traceparent ignored", "a", {**js, "traceparent": "00-zz"}, good),
        ("idempotent first", "a", {**js, "Idempotency-Key": f"{mode}-k1"}, good),
        ("idempotent replay", "a", {**js, "Idempotency-Key": f"{mode}-k1"}, good),
        ("idempotency conflict", "a", {**js, "Idempotency-Key": f"{mode}-k1"}, other),
        ("empty idempotency key", "a", {**js, "Idempotency-Key": ""}, good),
        ("long idempotency key", "a", {**js, "Idempotency-Key": "k" * 201}, good),
        ("read-only key", "a_read", js, good),
        ("unknown key", "trd_nope", js, good),
        ("no key", None, js, good),
        ("basic auth", None, {**js, "Authorization": "Basic YTpi"}, good),
        ("no content type", "a", {}, good),
        ("text content type", "a", {"Content-Type": "text/plain"}, good),
        ("empty body", "a", js, b""),
        ("not json", "a", js, b"{nope"),
        ("a list", "a", js, b"[1, 2]"),
        ("extra field", "a", js, b'{"task": "add", "nope": 1}'),
        ("unknown task", "a", js, b'{"task": "no-such-task"}'),
        ("builtin task", "a", js, b'{"task": "treadle.callback"}'),
        ("bad payload for the function", "a", js, b'{"task": "add", "payload": {"a": 1}}'),
        ("NUL in queue", "a", js, b'{"task": "add", "queue": "a\\u0000b"}'),
        ("lone surrogate", "a", js, b'{"task": "echo", "payload": {"s": "\\ud800"}}'),
        ("naive run_at", "a", js, b'{"task": "noop", "run_at": "2030-01-01T00:00:00"}'),
        ("payload over the limit", "a", js,
         json.dumps({"task": "echo", "payload": {"s": "x" * 5000}}).encode()),
        ("body over the limit", "a", js, b'{"task": "echo", "payload": {"s": "'
         + b"x" * 80_000 + b'"}}'),
        ("deep json", "a", js, b'{"task": "echo", "payload": {"d": ' + b"[" * 10_000
         + b"]" * 10_000 + b"}}"),
    ]


def _send(served: tuple[Api, TreadleAPI], mode: str) -> list[tuple[int, dict[str, str], Any]]:
    api, app = served
    fast = app.submit_fast_path
    assert fast is not None and fast.usable({"root_path": ""})
    if mode == "full":
        app.submit_fast_path = None
    try:
        out = []
        for _, key, headers, body in _cases(mode):
            with api.client(key) as http:
                out.append(_normal(http.post("/v1/jobs", content=body, headers=headers)))
        return out
    finally:
        app.submit_fast_path = fast


def test_fast_path_answers_every_request_as_the_route_does(
        served: tuple[Api, TreadleAPI]) -> None:
    full = _send(served, "full")
    jobs_after_full = len(served[0].treadle.list_jobs())
    path = served[1].submit_fast_path
    assert path is not None and path.served == path.referred == 0
    fast = _send(served, "fast")
    for (name, *_), a, b in zip(_cases("x"), full, fast, strict=True):
        assert a == b, name
    statuses = {name: status for (name, *_), (status, _, _) in zip(_cases("x"), fast,
                                                                    strict=True)}
    assert statuses["admin"] == statuses["tenant key"] == 202
    assert statuses["idempotent replay"] == 200
    assert statuses["idempotency conflict"] == 409
    assert statuses["read-only key"] == 403 and statuses["no key"] == 401
    assert statuses["body over the limit"] == 413
    # The fast path answered the good ones (and the conflict, found at commit time).
    assert path.served == sum(1 for s in statuses.values() if s in (200, 202, 409))
    assert path.referred == len(statuses) - path.served
    # Each mode created the same jobs: the refused requests wrote nothing either way.
    assert len(served[0].treadle.list_jobs()) == 2 * jobs_after_full


def test_fast_path_stores_the_tenant_and_traceparent(served: tuple[Api, TreadleAPI]) -> None:
    api, _ = served
    with api.client("b") as http:
        r = http.post("/v1/jobs", json={"task": "noop"}, headers={"traceparent": TRACEPARENT})
    assert r.status_code == 202
    job = api.treadle.get_job(r.json()["id"])
    assert (job.tenant, job.traceparent) == ("tenant-b", TRACEPARENT)


def test_chunked_uploads_are_limited_and_replayed(served: tuple[Api, TreadleAPI]) -> None:
    """Bodies without Content-Length: an oversized one still gets the 413 of the size
    limit; a good one, read by the fast path, is accepted."""
    api, _ = served

    def chunks(body: bytes) -> Iterator[bytes]:
        for i in range(0, len(body), 1000):
            yield body[i:i + 1000]

    big = b'{"task": "echo", "payload": {"s": "' + b"x" * 80_000 + b'"}}'
    ok = json.dumps({"task": "echo", "payload": {"s": "y" * 3000}}).encode()
    with api.client("a") as http:
        headers = {"Content-Type": "application/json"}
        refused = http.post("/v1/jobs", content=chunks(big), headers=headers)
        accepted = http.post("/v1/jobs", content=chunks(ok), headers=headers)
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"
    assert accepted.status_code == 202, accepted.text
    assert api.treadle.get_job(accepted.json()["id"]).payload == {"s": "y" * 3000}


def test_fast_path_requests_are_counted_on_metrics(served: tuple[Api, TreadleAPI]) -> None:
    api, _ = served
    with api.client("admin") as http:
        for _ in range(3):
            assert http.post("/v1/jobs", json={"task": "noop", "queue": "m"}).status_code == 202
        text = http.get("/metrics").text
    assert 'treadle_http_requests_total{method="POST",route="/v1/jobs",status="202"} 3.0' in text
    assert 'treadle_jobs_enqueued_total{queue="m"} 3.0' in text


def test_the_fast_path_steps_aside_for_changes_it_would_skip(
        served: tuple[Api, TreadleAPI]) -> None:
    """A dependency override or a route put in front of the submit route: the full
    stack serves the request."""
    api, app = served
    fast = app.submit_fast_path
    assert fast is not None
    app.dependency_overrides[object] = object
    assert not fast.usable({})
    app.dependency_overrides.clear()
    assert fast.usable({})

    @app.post("/v1/jobs")
    def shadow() -> dict[str, str]:
        return {"shadow": "yes"}

    app.router.routes.insert(0, app.router.routes.pop())
    assert not fast.usable({})
    with api.client("admin") as http:
        assert http.post("/v1/jobs", json={"task": "noop"}).json() == {"shadow": "yes"}
