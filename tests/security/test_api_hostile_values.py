"""Hostile values on HTTP routes the other security tests do not reach: instants beyond
the calendar, numbers that are not finite, names in paths that cannot be names, secrets
with control characters, unknown fields. Both stores, through the real ASGI app (fast path
included). Each answer is a 4xx problem document and nothing is written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.e2e.api.conftest import ADMIN_KEY, tenant_keys
from tests.e2e.api.tasks_app import build_app
from treadle import Treadle
from treadle.agents.plugin import Agents
from treadle.api import ApiConfig
from treadle.api.app import create_app
from treadle.api.auth import keystore_for
from treadle.core.job import JobFilter
from treadle.kinds import use_builtin


@dataclass
class Http:
    app: Treadle
    client: TestClient
    keys: dict[str, str]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def raw(self, method: str, path: str, text: str, who: str = "a") -> Any:
        return self.client.request(method, path, content=text.encode(),
                                   headers={**self.as_(who), "Content-Type": "application/json"})

    def jobs(self) -> list[int]:
        return [j.id for j in self.app.list_jobs(JobFilter(limit=1000))]


@pytest.fixture
def http(db_url: str) -> Iterator[Http]:
    app = use_builtin(build_app(db_url))
    app.migrate()
    keys = tenant_keys(app)
    client = TestClient(create_app(app, ApiConfig(admin_key=ADMIN_KEY, sync_window=0.2)),
                        raise_server_exceptions=False)
    try:
        yield Http(app, client, keys)
    finally:
        client.close()
        app.close()


def problem(r: Any, *statuses: int) -> dict[str, Any]:
    assert r.status_code in statuses, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    body: dict[str, Any] = r.json()
    return body


# An instant whose offset carries it past year 1 or year 9999 cannot be converted to UTC.
BEYOND = ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+00:01"]


@pytest.mark.parametrize("run_at", BEYOND)
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/run"])
def test_run_at_beyond_the_calendar_is_refused_and_nothing_stored(
        http: Http, path: str, run_at: str) -> None:
    r = http.raw("POST", path, f'{{"task": "noop", "run_at": "{run_at}"}}')
    assert "run_at" in problem(r, 422)["detail"]
    code = http.raw("POST", "/v1/run", '{"code": "def handler(i, env):\\n    return 1\\n", '
                    f'"language": "python", "run_at": "{run_at}"}}')
    problem(code, 422)
    assert http.jobs() == []


@pytest.mark.parametrize("name", ["created_after", "created_before"])
@pytest.mark.parametrize("value", BEYOND)
def test_list_filters_beyond_the_calendar_are_refused(http: Http, name: str, value: str) -> None:
    r = http.client.get("/v1/jobs", params={name: value}, headers=http.as_("a"))
    assert name in problem(r, 422)["detail"]


def test_the_calendar_edges_themselves_are_still_accepted(http: Http) -> None:
    """The control: UTC instants at the ends of the range the library takes are valid."""
    for run_at in ("1970-01-01T00:00:00Z", "9998-12-31T23:59:59Z"):
        r = http.raw("POST", "/v1/jobs", f'{{"task": "noop", "run_at": "{run_at}"}}')
        assert r.status_code == 202, r.text
    r = http.client.get("/v1/jobs", params={"created_after": "1970-01-01T00:00:00Z"},
                        headers=http.as_("a"))
    assert r.status_code == 200 and len(r.json()["jobs"]) == 2


def cap_rows(db_url: str) -> int:
    """Every cap stored, whatever its tenant (the ledger reads one tenant at a time)."""
    if db_url.startswith("sqlite"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            return int(conn.execute("SELECT count(*) FROM treadle_agent_caps").fetchone()[0])
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM treadle_agent_caps").fetchone()
        assert row is not None
        return int(row[0])


@pytest.mark.parametrize("value", ["Infinity", "1e400", "-Infinity", "NaN", "-1", '"5"x'])
def test_agent_caps_that_are_not_finite_are_refused_and_not_stored(http: Http, db_url: str,
                                                                   value: str) -> None:
    r = http.raw("PUT", "/v1/agents/caps/t1", f'{{"cap_usd": {value}}}', who="admin")
    problem(r, 422)
    assert cap_rows(db_url) == 0


@pytest.mark.parametrize("tenant", ["a%00", "%ED%A0%80", "x" * 300, "%20a", "a%0Ab"])
def test_agent_caps_on_names_that_cannot_be_tenants_are_refused(http: Http, db_url: str,
                                                                tenant: str) -> None:
    r = http.client.put(f"/v1/agents/caps/{tenant}", json={"cap_usd": 1.0},
                        headers=http.as_("admin"))
    problem(r, 422)
    assert cap_rows(db_url) == 0


def test_a_finite_cap_is_still_set(http: Http) -> None:
    r = http.client.put("/v1/agents/caps/t1", json={"cap_usd": 2.5}, headers=http.as_("admin"))
    assert r.status_code == 200 and r.json() == {"tenant": "t1", "cap_usd": 2.5}
    assert http.app.plugin(Agents).ledger.cap("t1") == 2.5


@pytest.mark.parametrize("secret", ["\\u0000" * 16, "a" * 15 + "\\u0000", "\\u0001" * 16,
                                    "secret-with-newline\\n!", "\\u007f" * 16])
def test_hook_secrets_with_control_characters_are_refused(http: Http, secret: str) -> None:
    r = http.raw("POST", "/v1/hooks",
                 f'{{"name": "h1", "task": "hooked", "secret": "{secret}"}}', who="admin")
    assert "secret" in problem(r, 422)["detail"]
    assert keystore_for(http.app).get_hook("h1") is None


@pytest.mark.parametrize("name", ["a%00", "h%00", "%ED%A0%80", "x" * 5000, "h1%0A"])
def test_hook_names_that_cannot_be_names_are_answered_like_unknown_ones(
        http: Http, name: str) -> None:
    made = http.client.post("/v1/hooks", json={"name": "h1", "task": "hooked"},
                            headers=http.as_("admin"))
    assert made.status_code == 201, made.text
    # Receiving: the one answer for an unknown name and a bad signature (no probing).
    body = problem(http.client.post(f"/v1/hooks/{name}", content=b"{}",
                                    headers={"Content-Type": "application/json"}), 401)
    assert body["type"].endswith("bad-signature")
    problem(http.client.delete(f"/v1/hooks/{name}", headers=http.as_("admin")), 404)
    assert keystore_for(http.app).get_hook("h1") is not None
    assert http.jobs() == []


def test_workflow_event_bodies_with_unknown_fields_are_refused(http: Http) -> None:
    """A misspelt field (``payloda``) would have been dropped silently, the event sent
    without what the caller meant to send."""
    r = http.client.post("/v1/events", json={"key": "k", "payloda": {"x": 1}},
                         headers=http.as_("a"))
    assert "payloda" in str(problem(r, 422))
    ok = http.client.post("/v1/events", json={"key": "k", "payload": {"x": 1}},
                          headers=http.as_("a"))
    assert ok.status_code == 202, ok.text


CODE = "def handler(i, env):\n    return 1\n"


@pytest.mark.parametrize("bad", [
    '"input": "\\ud800"', '"input": NaN', '"input": ' + "[" * 150 + "]" * 150,
    '"input": 1, "callback_url": "http://127.0.0.1:9/hook"',
])
def test_inline_code_refused_for_its_input_writes_nothing_and_keeps_the_key(
        http: Http, bad: str) -> None:
    """Before: the Idempotency-Key was claimed and the code registered before the input
    was checked, so the refused request left rows and the corrected retry got a 409."""
    headers = {**http.as_("a"), "Content-Type": "application/json", "Idempotency-Key": "k1"}
    body = f'{{"code": {CODE!r}, "language": "python", "wait": 0, {bad}}}'.replace("'", '"')
    problem(http.client.post("/v1/run", content=body.encode(), headers=headers), 422)
    assert http.client.get("/v1/dynamic-workers", headers=http.as_("a")).json()["workers"] == []
    fixed = http.client.post("/v1/run", json={"code": CODE, "language": "python", "wait": 0,
                                              "input": 1}, headers=headers)
    assert fixed.status_code in (200, 202), fixed.text
    assert len(http.jobs()) == 1


@pytest.mark.parametrize("body", [
    {"source": {"url": "https://example.com/v.mp4"}, "rendtions": ["1080p"]},
    {"source": {"url": "https://example.com/v.mp4", "path": "/etc/passwd"}},
    {"source": {"url": "https://example.com/v.mp4"}, "hls": True, "thumbnail": 1},
])
def test_media_requests_with_unknown_fields_are_refused(http: Http, body: dict[str, Any]) -> None:
    """Before: a misspelt ``renditions`` was dropped and the pipeline ran with the
    defaults, the caller's choice lost without a word."""
    pytest.importorskip("treadle.media.api")
    problem(http.client.post("/v1/media", json=body, headers=http.as_("a")), 422)
    assert http.jobs() == []


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/run"])
def test_two_idempotency_keys_are_refused_not_one_picked(http: Http, path: str) -> None:
    """Before: the first was used and the second ignored: a retry that sent them in the
    other order made a second job."""
    for first, second in (("k1", "k2"), ("k2", "k1")):
        r = http.client.post(path, json={"task": "noop", **({"wait": 0} if "run" in path
                                                              else {})},
                             headers=[("authorization", f"Bearer {http.keys['a']}"),
                                      ("idempotency-key", first), ("idempotency-key", second)])
        assert "Idempotency-Key" in problem(r, 422)["detail"]
    assert http.jobs() == []


def test_two_idempotency_keys_on_a_dynamic_worker_run_are_refused(http: Http) -> None:
    made = http.client.post("/v1/dynamic-workers", json={"code": CODE, "language": "python"},
                            headers=http.as_("a"))
    wid = made.json()["id"]
    r = http.client.post(f"/v1/dynamic-workers/{wid}/run?async=true", json={"input": 1},
                         headers=[("authorization", f"Bearer {http.keys['a']}"),
                                  ("idempotency-key", "k1"), ("idempotency-key", "k2")])
    problem(r, 422)
    assert http.jobs() == []
