"""``GET /v1/usage`` and the usage on ``/metrics`` (ADR 0022), over a real server."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tests.e2e.api.conftest import Api, wait_finished


def _run(api: Api, key: str, task: str, payload: dict[str, object], queue: str | None = None,
         ) -> dict[str, object]:
    with api.client(key) as c:
        body: dict[str, object] = {"task": task, "payload": payload}
        if queue:
            body["queue"] = queue
        job = c.post("/v1/jobs", json=body).json()
        return wait_finished(c, int(job["id"]))


def test_each_tenant_sees_its_own_usage_only(api: Api, worker: object) -> None:
    _run(api, "a", "echo", {"text": "é" * 50})
    _run(api, "a", "echo", {"n": 1}, queue="bulk")
    _run(api, "b", "echo", {"secret": "b" * 500})
    with api.client("a") as c:
        mine = c.get("/v1/usage").json()
        # Asking for another tenant does not widen a non-admin key's view.
        spy = c.get("/v1/usage", params={"tenant": "tenant-b"}).json()
        per_queue = c.get("/v1/usage", params={"group_by": "queue"}).json()
    assert [g["group"] for g in mine["groups"]] == ["tenant-a"]
    assert mine["tenant"] == "tenant-a" and mine["total"]["attempts"] == 2
    assert spy["groups"] == mine["groups"] and spy["tenant"] == "tenant-a"
    assert {g["group"]: g["attempts"] for g in per_queue["groups"]} == {"default": 1, "bulk": 1}
    a_result_bytes = mine["total"]["result_bytes"]
    assert a_result_bytes == len(b'{"text":"') + 100 + 2 + len('{"n":1}')
    with api.client("b") as c:
        theirs = c.get("/v1/usage").json()
    assert [g["group"] for g in theirs["groups"]] == ["tenant-b"]
    assert theirs["total"]["result_bytes"] == len('{"secret":""}') + 500
    with api.client("admin") as c:
        everyone = c.get("/v1/usage").json()
        only_b = c.get("/v1/usage", params={"tenant": "tenant-b"}).json()
    assert {g["group"] for g in everyone["groups"]} == {"tenant-a", "tenant-b"}
    assert [g["group"] for g in only_b["groups"]] == ["tenant-b"]
    for g in everyone["groups"]:
        assert g["wall_seconds"] >= g["cpu_seconds"] >= 0


def test_the_range_is_honoured_and_bad_ranges_are_problems(api: Api, worker: object) -> None:
    _run(api, "a", "echo", {})
    past = datetime.now(UTC) - timedelta(days=3)
    with api.client("a") as c:
        old = c.get("/v1/usage", params={"from": past.isoformat(),
                                         "to": (past + timedelta(hours=1)).isoformat()})
        assert old.status_code == 200 and old.json()["groups"] == []
        for params in ({"from": "2030-01-01T00:00:00Z", "to": "2029-01-01T00:00:00Z"},
                       {"from": "2030-01-01T00:00:00"}, {"group_by": "worker"},
                       {"from": "yesterday"}, {"tenant": "bad\x00name"}):
            r = c.get("/v1/usage", params=params)
            assert r.status_code == 422, (params, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")


def test_metrics_show_the_last_hours_usage_per_tenant_and_queue(api: Api,
                                                                worker: object) -> None:
    _run(api, "a", "echo", {"x": "y"})
    with api.client("admin") as c:
        text = c.get("/metrics").text
    found = re.search(
        r'^treadle_usage_attempts_last_hour\{queue="default",tenant="tenant-a"\} (\S+)$',
        text, re.MULTILINE)
    assert found is not None and float(found.group(1)) >= 1.0, text[-2000:]
    assert re.search(r'^treadle_usage_result_bytes_last_hour\{queue="default",'
                     r'tenant="tenant-a"\} 9\.0$', text, re.MULTILINE), text[-2000:]


HEADER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_submissions_store_the_requests_traceparent_canonical_or_not_at_all(api: Api) -> None:
    """Without tracing on the server a valid header is still kept for traced workers
    (ADR 0021); a malformed one is dropped. Task jobs, sync runs and inline code alike."""
    with api.client("a") as c:
        job = c.post("/v1/jobs", json={"task": "echo"}, headers={"traceparent": HEADER})
        run = c.post("/v1/run", json={"task": "echo", "wait": 0},
                     headers={"traceparent": HEADER})
        code = c.post("/v1/run", json={"code": "def handler(input, env):\n    return 1\n",
                                       "language": "python", "wait": 0},
                      headers={"traceparent": HEADER})
        bad = c.post("/v1/jobs", json={"task": "echo"},
                     headers={"traceparent": HEADER.upper()})
    for r in (job, run, code, bad):
        assert r.status_code in (200, 202), r.text
    stored = [api.treadle.get_job(r.json()["id"]).traceparent for r in (job, run, code, bad)]
    assert stored == [HEADER, HEADER, HEADER, None]


def test_dates_at_the_edge_of_the_calendar_are_problems_not_crashes(api: Api) -> None:
    """Found by schemathesis: ``astimezone`` overflows at year 1 with a positive offset."""
    with api.client("a") as c:
        for params in ({"from": "0001-01-01T00:00:00+14:00"},
                       {"to": "0001-01-01T00:30:00+01:00"},
                       {"to": "0001-01-01T12:00:00Z"}):  # from = to - 24 h
            r = c.get("/v1/usage", params=params)
            assert r.status_code == 422, (params, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        ok = c.get("/v1/usage", params={"from": "0001-01-01T00:00:00Z",
                                        "to": "9999-12-31T00:00:00Z"})
        assert ok.status_code == 200, ok.text
