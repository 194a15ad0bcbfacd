"""One error envelope; bad input never 5xx and never a row; auth; tenant isolation."""

from __future__ import annotations

import json

import pytest

from tests.e2e.api.conftest import Api, wait_finished

PROBLEM = "application/problem+json"


def _problem(r: object, status: int) -> dict[str, object]:
    import httpx

    assert isinstance(r, httpx.Response)
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, object] = r.json()
    assert body["status"] == status
    assert str(body["type"]).startswith("urn:treadle:problem:")
    assert body["title"] and body["detail"]
    return body


def _job_count(api: Api) -> int:
    return sum(api.treadle.store.count_by_status().values())


@pytest.mark.parametrize("raw", [b"{", b"not json", b"[1,2]", b'{"task": 5}', b"",
                                 b'{"task": "add", "payload": [1]}', b'{"task": "add", "x": 1}',
                                 b'{"task": " add"}', b'{"task": "add", "payload": {"a": NaN}}'])
def test_malformed_bodies_are_422_and_write_nothing(api: Api, raw: bytes) -> None:
    with api.client() as c:
        r = c.post("/v1/jobs", content=raw, headers={"Content-Type": "application/json"})
        _problem(r, 422)
    assert _job_count(api) == 0


def test_unknown_task_and_bad_options_422(api: Api) -> None:
    with api.client() as c:
        body = _problem(c.post("/v1/jobs", json={"task": "nope"}), 422)
        assert body["type"] == "urn:treadle:problem:unknown-task"
        _problem(c.post("/v1/jobs", json={"task": "add", "priority": 10**6}), 422)
        _problem(c.post("/v1/jobs", json={"task": "add", "run_at": "2030-01-01T00:00:00"}), 422)
        _problem(c.post("/v1/jobs", json={"task": "add", "callback_url": "ftp://x/y"}), 422)
        _problem(c.post("/v1/run", json={}), 422)
        wrong = _problem(c.post("/v1/jobs", json={"task": "add", "payload": {"q": 1}}), 422)
        detail = wrong["detail"]
        assert isinstance(detail, str)
        assert "payload does not match task 'add'" in detail
    assert _job_count(api) == 0


def test_payload_over_limit_413(api: Api) -> None:
    big = "x" * (1 << 20)
    with api.client() as c:
        _problem(c.post("/v1/jobs", json={"task": "echo", "payload": {"s": big}}), 413)
        # the whole request over the body limit is refused before parsing, chunked or not
        huge = json.dumps({"task": "echo", "payload": {"s": "y" * (2 << 20)}}).encode()
        _problem(c.post("/v1/jobs", content=huge, headers={"Content-Type": "application/json"}),
                 413)

        def chunks() -> object:
            for i in range(0, len(huge), 65536):
                yield huge[i:i + 65536]

        _problem(c.post("/v1/jobs", content=chunks(),  # type: ignore[arg-type]
                        headers={"Content-Type": "application/json"}), 413)
        ok = c.post("/v1/jobs", json={"task": "echo", "payload": {"s": "x" * 1000}})
        assert ok.status_code == 202
    assert _job_count(api) == 1


def test_framework_errors_use_the_envelope(api: Api) -> None:
    with api.client() as c:
        _problem(c.get("/v1/nowhere"), 404)
        _problem(c.delete("/v1/jobs"), 405)
        _problem(c.get("/v1/jobs/abc"), 422)
        _problem(c.get("/v1/jobs/99999999999999999999999"), 404)
        _problem(c.get("/v1/jobs", params={"limit": 0}), 422)


def test_auth_401_403(api: Api) -> None:
    with api.client(None) as anon:
        r = anon.get("/v1/jobs")
        _problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
    with api.client("trd_not-a-real-key") as bad:
        _problem(bad.get("/v1/jobs"), 401)
    with api.client("a_read") as reader:
        assert reader.get("/v1/jobs").status_code == 200
        _problem(reader.post("/v1/jobs", json={"task": "noop"}), 403)
    with api.client("a") as a:
        _problem(a.get("/metrics"), 403)
    with api.client("admin") as admin:
        assert admin.get("/metrics").status_code == 200


def test_revoked_key_is_refused(api: Api) -> None:
    from treadle.api.auth import keystore_for

    ks = keystore_for(api.treadle)
    key, raw = ks.create_key("tenant-c", "read")
    with api.client(raw) as c:
        assert c.get("/v1/jobs").status_code == 200
        assert ks.revoke(key.id)
        _problem(c.get("/v1/jobs"), 401)


def test_tenant_isolation(api: Api, worker: object) -> None:
    with api.client("a") as a, api.client("b") as b:
        ja = a.post("/v1/jobs", json={"task": "boom"}).json()
        jb = b.post("/v1/jobs", json={"task": "add", "payload": {"a": 1, "b": 1}}).json()
        assert ja["tenant"] == "tenant-a" and jb["tenant"] == "tenant-b"
        wait_finished(a, ja["id"])
        wait_finished(b, jb["id"])
        assert [j["id"] for j in a.get("/v1/jobs").json()["jobs"]] == [ja["id"]]
        assert [j["id"] for j in b.get("/v1/jobs").json()["jobs"]] == [jb["id"]]
        for path in (f"/v1/jobs/{ja['id']}", f"/v1/jobs/{ja['id']}/events",
                     f"/v1/jobs/{ja['id']}/logs"):
            body = _problem(b.get(path), 404)
            assert body["type"] == "urn:treadle:problem:job-not-found"
        _problem(b.post(f"/v1/jobs/{ja['id']}/retry"), 404)
        _problem(b.post(f"/v1/jobs/{ja['id']}/cancel"), 404)
        # the failed job of A is still failed: B's retry changed nothing
        assert a.get(f"/v1/jobs/{ja['id']}").json()["status"] == "failed"
        # the same idempotency key in two tenants names two different jobs
        ka = a.post("/v1/jobs", json={"task": "noop"}, headers={"Idempotency-Key": "k1"})
        kb = b.post("/v1/jobs", json={"task": "noop"}, headers={"Idempotency-Key": "k1"})
        assert ka.status_code == kb.status_code == 202
        assert ka.json()["id"] != kb.json()["id"]
