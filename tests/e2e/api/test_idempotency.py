"""Idempotency-Key: one job under 20 concurrent identical submissions; reuse with another
body is a 409 and writes nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.e2e.api.conftest import Api


def test_twenty_concurrent_identical_submissions_make_one_job(api: Api) -> None:
    body = {"task": "echo", "payload": {"order": 17}}

    def submit(_: int) -> tuple[int, int]:
        with api.client() as c:
            r = c.post("/v1/jobs", json=body, headers={"Idempotency-Key": "order-17"})
            return r.status_code, r.json()["id"]

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(submit, range(20)))
    assert {job_id for _, job_id in results} == {results[0][1]}
    statuses = sorted(s for s, _ in results)
    assert statuses.count(202) == 1 and statuses.count(200) == 19
    assert sum(api.treadle.store.count_by_status(tenant="tenant-a").values()) == 1


def test_same_key_different_body_conflicts(api: Api) -> None:
    with api.client() as c:
        h = {"Idempotency-Key": "k-2"}
        first = c.post("/v1/jobs", json={"task": "echo", "payload": {"n": 1}}, headers=h)
        assert first.status_code == 202
        again = c.post("/v1/jobs", json={"task": "echo", "payload": {"n": 1}}, headers=h)
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"
        other = c.post("/v1/jobs", json={"task": "echo", "payload": {"n": 2}}, headers=h)
        assert other.status_code == 409
        assert other.headers["content-type"].startswith("application/problem+json")
        assert other.json()["type"] == "urn:treadle:problem:idempotency-conflict"
        # /v1/run with the same key and body hands back the same job
        run = c.post("/v1/run", json={"task": "echo", "payload": {"n": 1}, "wait": 0}, headers=h)
        assert run.json()["id"] == first.json()["id"]
    assert sum(api.treadle.store.count_by_status().values()) == 1
