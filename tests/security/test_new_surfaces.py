"""Hostile input on the boundaries added with quarantine, retention, usage and tracing
(ADRs 0015, 0010, 0022, 0021): HTTP through a real ASGI app over both stores, and the CLI.

Each attack is made by a tenant (or a key) that must not succeed; the answer is a 4xx
problem+json (CLI: a message and a non-zero exit) and nothing changes, for anyone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.e2e.api.conftest import ADMIN_KEY, Api, tenant_keys
from tests.support.pg import free_port
from treadle import Treadle
from treadle.api import ApiConfig, start_in_thread
from treadle.api.app import create_app
from treadle.cli import app as cli
from treadle.core.job import NewJob
from treadle.core.lifecycle import JobStatus
from treadle.core.outcome import Outcome, OutcomeKind
from treadle.core.usage import Usage
from treadle.testing import ManualClock

LEASE = 5.0


@dataclass
class Site:
    app: Treadle
    clock: ManualClock
    http: TestClient
    keys: dict[str, str]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def quarantined(self, tenant: str) -> int:
        """A job of ``tenant`` whose worker died under it three times: quarantined."""
        [h] = self.app.enqueue([NewJob(task="poison", tenant=tenant)])
        for n in (1, 2, 3):
            claimed = (self.app.store.claim(queues=None, worker=f"w{n}", limit=1,
                                            lease_seconds=LEASE)
                       or self.app.store.claim(queues=None, worker=f"w{n}", limit=1,
                                               lease_seconds=LEASE, suspect=True))
            assert [j.id for j in claimed] == [h.id]
            self.clock.advance(LEASE + 0.5)
            assert self.app.store.reap().total == 1
        assert self.app.get_job(h.id).status is JobStatus.QUARANTINED
        return h.id


@pytest.fixture
def site(db_url: str) -> Iterator[Site]:
    clock = ManualClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    app = Treadle(db_url, clock=clock)

    @app.task(name="poison")
    def poison() -> None:
        return None

    app.migrate()
    keys = tenant_keys(app)
    http = TestClient(create_app(app, ApiConfig(admin_key=ADMIN_KEY)))
    try:
        yield Site(app, clock, http, keys)
    finally:
        http.close()
        app.close()


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    return body


def snapshot(app: Treadle, job_id: int) -> tuple[str, int, int]:
    job = app.get_job(job_id)
    return job.status.value, len(job.crashes), len(app.job_events(job_id))


# -- 1. quarantine: release and discard ---------------------------------------------------


@pytest.mark.parametrize("verb", ["release", "discard"])
def test_another_tenants_quarantined_job_is_404_and_unchanged(site: Site, verb: str) -> None:
    theirs = site.quarantined("tenant-a")
    before = snapshot(site.app, theirs)
    r = site.http.post(f"/v1/jobs/{theirs}/{verb}", headers=site.as_("b"))
    body = problem(r, 404)  # not 409: the job's existence and state are not disclosed
    assert "quarantined" not in r.text and body["type"].endswith("job-not-found")
    assert snapshot(site.app, theirs) == before
    # A read-only key of the owner cannot steer it either.
    problem(site.http.post(f"/v1/jobs/{theirs}/{verb}", headers=site.as_("a_read")), 403)
    assert snapshot(site.app, theirs) == before


@pytest.mark.parametrize("verb", ["release", "discard"])
@pytest.mark.parametrize("path_id", [
    "999999", "0", "-1", "9223372036854775808", "1" + "0" * 400, "1.5", "abc", "1e3",
    "%00", "1%00", "%ED%A0%80", "..", "0x1",
])
def test_hostile_job_ids_are_refused_with_nothing_changed(site: Site, verb: str,
                                                          path_id: str) -> None:
    mine = site.quarantined("tenant-a")
    before = snapshot(site.app, mine)
    r = site.http.post(f"/v1/jobs/{path_id}/{verb}", headers=site.as_("a"))
    assert r.status_code in (404, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert snapshot(site.app, mine) == before


@pytest.mark.parametrize("verb", ["release", "discard"])
@pytest.mark.parametrize("arg", ["-1", "0", "424242", "9223372036854775808", "abc", "1\x00",
                                 "\udcff"])
def test_cli_release_discard_of_hostile_ids(site: Site, db_url: str, verb: str,
                                            arg: str) -> None:
    mine = site.quarantined("tenant-a")
    before = snapshot(site.app, mine)
    res = CliRunner().invoke(cli, ["jobs", verb, arg, "--db", db_url])
    assert res.exit_code != 0, res.output
    assert "Traceback" not in res.output
    assert snapshot(site.app, mine) == before


@pytest.mark.parametrize("verb", ["release", "discard"])
def test_cli_over_http_cannot_steer_another_tenants_job(site: Site, verb: str) -> None:
    """``treadle jobs release|discard --url --key``: the remote path, tenant b's key."""
    theirs = site.quarantined("tenant-a")
    before = snapshot(site.app, theirs)
    port = free_port()
    server = start_in_thread(site.app, host="127.0.0.1", port=port,
                             config=ApiConfig(admin_key=ADMIN_KEY))
    try:
        url = f"http://127.0.0.1:{port}"
        res = CliRunner().invoke(cli, ["jobs", verb, str(theirs), "--url", url,
                                       "--key", site.keys["b"]])
        assert res.exit_code != 0 and "not found" in res.output.lower(), res.output
        assert "quarantined" not in res.output
        assert snapshot(site.app, theirs) == before
        mine = CliRunner().invoke(cli, ["jobs", verb, str(theirs), "--url", url,
                                        "--key", site.keys["a"]])
        assert mine.exit_code == 0, mine.output  # the control: its owner can
    finally:
        server.should_exit = True
        time.sleep(0.05)  # as the other in-thread servers of this suite


# -- 2. retention -------------------------------------------------------------------------


def retention(app: Treadle, queue: str) -> float | None:
    return next((q.retention_seconds for q in app.store.queues() if q.name == queue), None)


@pytest.mark.parametrize("value", [
    "-1", "0", "59", "NaN", "Infinity", "-Infinity", "1e308", "true", "false", '"59"',
    "3600.5", "315360001", "[3600]", '{"s": 3600}', "1" + "0" * 400,
])
def test_hostile_retention_values_are_refused(site: Site, value: str) -> None:
    site.app.enqueue([NewJob(task="poison", queue="q1")])
    before = retention(site.app, "q1")
    r = site.http.patch("/v1/queues/q1", content=f'{{"retention_seconds": {value}}}',
                        headers={**site.as_("admin"), "Content-Type": "application/json"})
    problem(r, 422)
    assert retention(site.app, "q1") == before


def test_retention_bodies_huge_or_deep_are_refused(site: Site) -> None:
    site.app.enqueue([NewJob(task="poison", queue="q1")])
    before = retention(site.app, "q1")
    headers = {**site.as_("admin"), "Content-Type": "application/json"}
    deep = '{"retention_seconds": ' + "[" * 10_000 + "]" * 10_000 + "}"
    huge = '{"retention_seconds": 3600, "pad": "' + "x" * (50 << 20) + '"}'
    for body in (deep, huge):
        r = site.http.patch("/v1/queues/q1", content=body.encode(), headers=headers)
        assert r.status_code in (400, 413, 422), r.status_code
        assert r.headers["content-type"].startswith("application/problem+json")
    assert retention(site.app, "q1") == before


# ``..`` is an ordinary queue name (queue names are never paths); "%2E%2E" reaches the
# route as one and is allowed like any other name, so it is not an attack here.
@pytest.mark.parametrize("name", ["q%00", "q%ED%A0%80", "..", "a%2Fb", "%20", "x" * 201])
def test_retention_on_hostile_queue_names_is_refused(site: Site, name: str) -> None:
    names_before = sorted(q.name for q in site.app.store.queues())
    r = site.http.patch(f"/v1/queues/{name}", json={"retention_seconds": 3600},
                        headers=site.as_("admin"))
    assert r.status_code in (404, 405, 422), r.text
    assert sorted(q.name for q in site.app.store.queues()) == names_before


def test_a_tenant_key_cannot_change_retention_for_everyone(site: Site) -> None:
    site.app.enqueue([NewJob(task="poison", queue="shared", tenant="tenant-b")])
    before = retention(site.app, "shared")
    for who in ("a", "b", "a_read"):
        for body in ({"retention_seconds": 60}, {"retention_seconds": None}):
            r = site.http.patch("/v1/queues/shared", json=body, headers=site.as_(who))
            problem(r, 403)
    problem(site.http.patch("/v1/queues/shared", json={"retention_seconds": 60}), 401)
    assert retention(site.app, "shared") == before
    ok = site.http.patch("/v1/queues/shared", json={"retention_seconds": 60},
                         headers=site.as_("admin"))
    assert ok.status_code == 200 and ok.json()["retention_seconds"] == 60


@pytest.mark.parametrize(("queue", "age"), [
    ("q1", "-1h"), ("q1", "0s"), ("q1", "59s"), ("q1", "nan"), ("q1", "inf"), ("q1", "1e308s"),
    ("q1", "11000d"), ("q1", "true"), ("q1", "1h\x00"), ("q1", "\udcff"),
    ("q\x00", "1h"), ("\udcff", "1h"), ("", "1h"),
])
def test_cli_set_retention_refuses_hostile_input(site: Site, db_url: str, queue: str,
                                                 age: str) -> None:
    site.app.enqueue([NewJob(task="poison", queue="q1")])
    before = sorted((q.name, q.retention_seconds) for q in site.app.store.queues())
    res = CliRunner().invoke(cli, ["queues", "set-retention", queue, age, "--db", db_url])
    assert res.exit_code != 0, res.output
    assert ("Traceback" not in res.output and res.exception is None) or \
        isinstance(res.exception, SystemExit)
    assert sorted((q.name, q.retention_seconds) for q in site.app.store.queues()) == before


# -- 3. usage -----------------------------------------------------------------------------


@pytest.mark.parametrize("params", [
    {"from": "yesterday"}, {"to": "2026-13-45T00:00:00Z"}, {"from": "2026-03-01T00:00:00"},
    {"from": "0001-01-01T00:00:00+23:59", "to": "2026-03-01T00:00:00Z"},
    {"to": "9999-12-31T23:59:59-23:59"}, {"from": "2026-03-02T00:00:00Z",
                                          "to": "2026-03-01T00:00:00Z"},
    {"from": "2026-03-01T00:00:00\x00Z"},
    {"group_by": "tenant; drop table jobs"}, {"group_by": "tenant\x00"},
    {"group_by": "tenant, cost_usd"}, {"group_by": "task"},
    {"tenant": "a\x00"}, {"tenant": ""}, {"tenant": "a\nb"},
    {"from": "1" * 5000},
])
def test_hostile_usage_queries_get_a_problem(site: Site, params: dict[str, str]) -> None:
    r = site.http.get("/v1/usage", params=params, headers=site.as_("admin"))
    problem(r, 422)


@pytest.mark.parametrize("raw", ["from=%ED%B3%BF", "group_by=%ED%A0%80", "tenant=%ED%A0%80",
                                 "from=%00", "group_by=tenant%00"])
def test_undecodable_usage_parameters_get_a_problem(site: Site, raw: str) -> None:
    problem(site.http.get(f"/v1/usage?{raw}", headers=site.as_("admin")), 422)


def test_sql_in_a_tenant_name_is_a_name_not_sql(site: Site) -> None:
    """Names may hold quotes and semicolons (they are bound parameters, never SQL)."""
    site.app.enqueue([NewJob(task="poison")])
    r = site.http.get("/v1/usage", params={"tenant": "tenant-b'; drop table jobs; --"},
                      headers=site.as_("admin"))
    assert r.status_code == 200 and r.json()["groups"] == [], r.text
    assert len(site.app.list_jobs()) == 1


def test_the_widest_usage_range_is_answered_not_crashed(site: Site) -> None:
    r = site.http.get("/v1/usage", params={"from": "0001-01-01T00:00:00Z",
                                           "to": "9999-12-31T23:59:59Z"},
                      headers=site.as_("admin"))
    assert r.status_code == 200, r.text


def test_a_tenant_key_sees_only_its_own_usage(site: Site) -> None:
    from treadle.store.usage import UsageReader

    site.app.enqueue([NewJob(task="poison", tenant=t)
                      for t in ("tenant-a", "tenant-b", "tenant-b")])
    for _ in range(3):
        [job] = site.app.store.claim(queues=None, worker="w", limit=1, lease_seconds=LEASE)
        assert site.app.store.complete(
            [Outcome(job.id, job.lease_token, OutcomeKind.SUCCEEDED, "w",
                     usage=Usage(wall_seconds=1.0))]) == [True]
    assert {r.group for r in UsageReader(site.app.store).summary(
        start=datetime(2026, 3, 1, tzinfo=UTC), end=datetime(2026, 3, 2, tzinfo=UTC),
        group_by="tenant", tenant=None)} == {"tenant-a", "tenant-b"}
    span = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z"}
    for params in ({}, {"tenant": "tenant-b"}, {"group_by": "queue"},
                   {"group_by": "queue", "tenant": "tenant-b"}):
        body = site.http.get("/v1/usage", params={**span, **params},
                             headers=site.as_("a")).json()
        assert body["tenant"] == "tenant-a", body
        assert body["total"]["attempts"] == 1, body
        if body["group_by"] == "tenant":
            assert [g["group"] for g in body["groups"]] == ["tenant-a"]
    admin = site.http.get("/v1/usage", params={**span, "tenant": "tenant-b"},
                          headers=site.as_("admin")).json()
    assert admin["total"]["attempts"] == 2


# -- 4. traceparent -----------------------------------------------------------------------

VALID_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize("header", [
    "garbage", "00-" + "z" * 32 + "-00f067aa0ba902b7-01", "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01", "ff-" + VALID_TRACE[3:],
    VALID_TRACE + "-" + "a" * 50_000, "a" * 60_000, VALID_TRACE.upper(),
    " " + VALID_TRACE + "\t", VALID_TRACE.replace("-", "_"), "\x7f" * 55,
])
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/run"])
def test_hostile_traceparent_is_never_stored_raw(site: Site, header: str, path: str) -> None:
    r = site.http.post(path, json={"task": "poison", "wait": 0} if path == "/v1/run"
                       else {"task": "poison"},
                       headers={**site.as_("a"), "traceparent": header})
    assert r.status_code in (200, 202, 431), r.text
    for job in site.app.list_jobs():
        stored = job.traceparent
        assert stored is None or (len(stored) == 55 and stored == stored.lower()
                                  and stored != header), stored
        assert header not in repr(job.to_json())


def test_a_nul_or_control_traceparent_is_refused_or_ignored(site: Site) -> None:
    for header in (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\x00",
                   b"\xed\xa0\x80", b"00-\x00"):
        try:
            r = site.http.post("/v1/jobs", json={"task": "poison"},
                               headers=[(b"authorization", f"Bearer {site.keys['a']}".encode()),
                                        (b"traceparent", header)])
        except (httpx.LocalProtocolError, ValueError):
            continue  # the client itself refuses to send it: nothing reaches the server
        assert r.status_code in (202, 400, 422), r.text
    assert all(j.traceparent is None for j in site.app.list_jobs())


def test_two_traceparents_are_ignored_not_joined(site: Site) -> None:
    other = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    r = site.http.post("/v1/jobs", json={"task": "poison"},
                       headers=[("authorization", f"Bearer {site.keys['a']}"),
                                ("traceparent", VALID_TRACE), ("traceparent", other)])
    assert r.status_code == 202, r.text
    [job] = site.app.list_jobs()
    assert job.traceparent is None


def test_a_valid_traceparent_is_kept(site: Site) -> None:
    """The control: the attacks above are ignored, not everything."""
    r = site.http.post("/v1/jobs", json={"task": "poison"},
                       headers={**site.as_("a"), "traceparent": VALID_TRACE})
    assert r.status_code == 202, r.text
    [job] = site.app.list_jobs()
    assert job.traceparent == VALID_TRACE


# -- 7. dynamic workers under their new and their deprecated paths -------------------------

WORKER = "def handler(input, env):\n    return {'secret': 'tenant-a-only'}"


def test_another_tenants_worker_is_404_through_both_paths(dapi: Api) -> None:
    with dapi.client("a") as a, dapi.client("b") as b:
        reg = a.post("/v1/dynamic-workers", json={"code": WORKER, "language": "python",
                                                  "name": "mine"})
        assert reg.status_code == 201, reg.text
        wid = reg.json()["id"]
        jobs_before = len(dapi.treadle.list_jobs())
        for prefix in ("/v1/dynamic-workers", "/v1/workers"):
            for method, path, body in (
                ("GET", f"{prefix}/{wid}", None),
                ("POST", f"{prefix}/{wid}/run", {"input": 1}),
                ("POST", f"{prefix}/{wid}/run?async=true", {"input": 1}),
            ):
                r = b.request(method, path, json=body)
                problem(r, 404)
                assert "tenant-a-only" not in r.text and WORKER not in r.text
            listed = b.get(prefix).json()["workers"]
            assert wid not in [w["id"] for w in listed]
            for hostile in (f"{wid}%00", "%ED%A0%80", "..%2F" + wid, wid.upper(), "x" * 5000):
                r = b.get(f"{prefix}/{hostile}")
                assert r.status_code in (404, 422), (prefix, hostile, r.status_code)
        assert len(dapi.treadle.list_jobs()) == jobs_before
        # The control: the owner reaches it through both.
        assert a.get(f"/v1/workers/{wid}").status_code == 200
        assert a.get(f"/v1/dynamic-workers/{wid}").status_code == 200
