"""Inbound signed hooks, Prometheus metrics, and `treadle keys`."""

from __future__ import annotations

import json
import subprocess

from tests.e2e.api.conftest import Api, treadle_cli, wait_finished
from treadle.webhooks import signed_headers


def test_inbound_hook_becomes_a_job(api: Api, worker: object) -> None:
    with api.client("admin") as admin, api.client(None) as sender:
        r = admin.post("/v1/hooks", json={"name": "github-push", "task": "hooked"})
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        assert "secret" not in admin.get("/v1/hooks").json()["hooks"][0]
        body = json.dumps({"ref": "main"}).encode()
        headers = {**signed_headers(secret, body), "Treadle-Delivery-Id": "d-1",
                   "Content-Type": "application/json"}
        accepted = sender.post("/v1/hooks/github-push", content=body, headers=headers)
        assert accepted.status_code == 202, accepted.text
        job = wait_finished(admin, accepted.json()["id"])
        assert job["result"] == {"got": {"ref": "main"}} and job["tenant"] == "default"
        # the sender retrying the same delivery does not make a second job
        again = sender.post("/v1/hooks/github-push", content=body, headers=headers)
        assert again.status_code == 200 and again.json()["id"] == accepted.json()["id"]
        # tampered body, wrong secret, unknown hook: 401, no job
        bad = sender.post("/v1/hooks/github-push", content=body + b" ", headers=headers)
        assert bad.status_code == 401
        assert bad.headers["content-type"].startswith("application/problem+json")
        forged = {**signed_headers("x" * 20, body), "Content-Type": "application/json"}
        assert sender.post("/v1/hooks/github-push", content=body, headers=forged).status_code \
            == 401
        assert sender.post("/v1/hooks/nope", content=body, headers=headers).status_code == 401
        assert admin.post("/v1/hooks", json={"name": "x", "task": "nope"}).status_code == 422
        assert admin.delete("/v1/hooks/github-push").status_code == 204
        assert admin.delete("/v1/hooks/github-push").status_code == 404
    assert api.treadle.store.count_by_status() == {"succeeded": 1}


def test_hook_names_are_not_shared_across_tenants(api: Api) -> None:
    from treadle.api.auth import keystore_for

    other = keystore_for(api.treadle).create_key("tenant-z", "admin")[1]
    with api.client("admin") as admin, api.client(other) as z:
        assert admin.post("/v1/hooks", json={"name": "h", "task": "noop"}).status_code == 201
        r = z.post("/v1/hooks", json={"name": "h", "task": "noop"})
        assert r.status_code == 409
        assert z.get("/v1/hooks").json() == {"hooks": []}


def test_metrics_exposition(api: Api, worker: object) -> None:
    with api.client() as c, api.client("admin") as admin:
        c.post("/v1/run", json={"task": "noop"})
        c.post("/v1/jobs", json={"task": "noop", "queue": "later", "delay": 3600})
        text = admin.get("/metrics").text
    assert 'treadle_jobs_enqueued_total{queue="default"} 1.0' in text
    assert 'treadle_jobs{queue="later",state="scheduled"} 1.0' in text
    assert 'treadle_jobs_by_status{status="succeeded"} 1.0' in text
    assert "treadle_http_request_duration_seconds_bucket" in text
    assert 'route="/v1/run"' in text
    assert "treadle_store_up 1.0" in text


def test_observer_counts_worker_activity(api: Api) -> None:
    from treadle.api.metrics import Metrics
    from treadle.core.job import JobKind
    from treadle.executors import TaskExecutor
    from treadle.worker import Worker, WorkerConfig

    m = Metrics()
    m.bind(api.treadle)
    api.treadle.defer("noop")
    api.treadle.defer("boom")
    w = Worker(api.treadle.store, {JobKind.TASK: TaskExecutor(api.treadle)},
               WorkerConfig(concurrency=2, burst=True), observer=m.observer())
    w.run()
    text = m.render().decode()
    assert 'treadle_jobs_completed_total{outcome="succeeded",queue="default"} 1.0' in text
    assert 'treadle_jobs_completed_total{outcome="failed",queue="default"} 1.0' in text
    assert "treadle_claim_latency_seconds_count" in text
    assert "treadle_worker_heartbeats_total" in text


def test_keys_cli_create_list_revoke(api: Api) -> None:
    db = api.treadle.url
    out = treadle_cli("keys", "create", "--tenant", "cli-t", "--scopes", "submit,read",
                      "--db", db, stdout=subprocess.PIPE)
    stdout, _ = out.communicate(timeout=30)
    assert out.returncode == 0, stdout
    raw = stdout.strip().splitlines()[-1]
    assert raw.startswith("trd_") and " " not in raw
    with api.client(raw) as c:
        job = c.post("/v1/jobs", json={"task": "noop"})
        assert job.status_code == 202 and job.json()["tenant"] == "cli-t"
    listing = treadle_cli("keys", "list", "--json", "--tenant", "cli-t", "--db", db,
                          stdout=subprocess.PIPE)
    keys = json.loads(listing.communicate(timeout=30)[0])
    assert len(keys) == 1 and keys[0]["scopes"] == ["read", "submit"]
    assert raw not in json.dumps(keys)
    rv = treadle_cli("keys", "revoke", keys[0]["id"], "--db", db, stdout=subprocess.PIPE)
    rv.communicate(timeout=30)
    assert rv.returncode == 0
    with api.client(raw) as c:
        assert c.get("/v1/jobs").status_code == 401
    bad = treadle_cli("keys", "create", "--scopes", "root", "--db", db,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    bad.communicate(timeout=30)
    assert bad.returncode != 0
