"""Submit over HTTP, a worker runs it, the result comes back: async and sync modes."""

from __future__ import annotations

import time

import httpx

from tests.e2e.api.conftest import ADMIN_KEY, Api, api_worker, treadle_cli, wait_finished
from tests.support.pg import free_port


def test_async_submit_location_and_result(api: Api, worker: object) -> None:
    with api.client() as c:
        r = c.post("/v1/jobs", json={"task": "add", "payload": {"a": 20, "b": 22}})
        assert r.status_code == 202, r.text
        assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
        job = r.json()
        assert job["status"] == "queued" and job["tenant"] == "tenant-a"
        done = wait_finished(c, job["id"])
        assert done["status"] == "succeeded" and done["result"] == 42
        events = c.get(f"/v1/jobs/{job['id']}/events").json()["events"]
        assert [e["to_status"] for e in events] == ["queued", "running", "succeeded"]
        assert c.get(f"/v1/jobs/{job['id']}/logs").json() == {"logs": []}


def test_sync_run_returns_result(api: Api, worker: object) -> None:
    with api.client() as c:
        t0 = time.perf_counter()
        r = c.post("/v1/run", json={"task": "echo", "payload": {"x": [1, 2]}})
        assert r.status_code == 200, r.text
        assert r.json()["result"] == {"x": [1, 2]}
        assert time.perf_counter() - t0 < 5
        failed = c.post("/v1/run", json={"task": "boom"})
        assert failed.status_code == 200
        assert failed.json()["status"] == "failed"
        assert failed.json()["error"]["class"] == "permanent"


def test_sync_run_falls_back_to_202_then_poll(api: Api, worker: object) -> None:
    with api.client() as c:
        t0 = time.perf_counter()
        r = c.post("/v1/run", json={"task": "sleep", "payload": {"seconds": 1.5}, "wait": 0.3})
        assert r.status_code == 202, r.text
        assert 0.25 < time.perf_counter() - t0 < 1.4
        assert r.json()["status"] in ("queued", "running")
        assert r.headers["location"] == f"/v1/jobs/{r.json()['id']}"
        assert wait_finished(c, r.json()["id"])["result"] == 1.5


def test_sync_window_caps_wait_without_worker(api: Api) -> None:
    # No worker: the job cannot finish; wait beyond the window is capped by it.
    with api.client() as c:
        r = c.post("/v1/run", json={"task": "noop", "wait": 0.2})
        assert r.status_code == 202
        assert c.post(f"/v1/jobs/{r.json()['id']}/cancel").json()["status"] == "cancelled"


def test_inline_code_is_checked_at_submit(api: Api) -> None:
    # Inline code runs exist now (tests/e2e/api/test_workers_http.py); what is refused at
    # submit time is refused before anything is written.
    with api.client() as c:
        for body in (
            {"code": "function handler() {}"},  # no language
            {"code": "function handler() {}", "language": "cobol"},
            {"code": "function handler() {}", "language": "javascript",
             "limits": {"timeout": 0}},
            {"code": "function handler() {}", "language": "javascript", "task": "noop"},
            {"task": "noop", "input": 1},
        ):
            r = c.post("/v1/run", json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        assert c.get("/v1/jobs").json()["jobs"] == []


def test_list_filters_and_cursor(api: Api, worker: object) -> None:
    with api.client() as c:
        ids = [c.post("/v1/jobs", json={"task": "add", "payload": {"a": i, "b": 0}}).json()["id"]
               for i in range(5)]
        c.post("/v1/jobs", json={"task": "echo", "queue": "other"})
        for i in ids:
            wait_finished(c, i)
        page1 = c.get("/v1/jobs", params={"task": "add", "limit": 2}).json()
        assert [j["id"] for j in page1["jobs"]] == ids[::-1][:2]
        page2 = c.get("/v1/jobs", params={"task": "add", "limit": 2,
                                          "cursor": page1["next_cursor"]}).json()
        assert [j["id"] for j in page2["jobs"]] == ids[::-1][2:4]
        page3 = c.get("/v1/jobs", params={"task": "add", "limit": 2,
                                          "cursor": page2["next_cursor"]}).json()
        assert [j["id"] for j in page3["jobs"]] == [ids[0]] and page3["next_cursor"] is None
        other = c.get("/v1/jobs", params={"queue": "other"}).json()["jobs"]
        assert [j["task"] for j in other] == ["echo"]
        ok = c.get("/v1/jobs", params={"status": ["succeeded"], "task": "add"}).json()["jobs"]
        assert len(ok) == 5
        future = c.get("/v1/jobs", params={"created_after": "2999-01-01T00:00:00Z"}).json()
        assert future["jobs"] == []
        naive = c.get("/v1/jobs", params={"created_after": "2020-01-01T00:00:00"})
        assert naive.status_code == 422


def test_cancel_and_retry(api: Api) -> None:
    with api.client() as c:
        job = c.post("/v1/jobs", json={"task": "noop"}).json()
        assert c.post(f"/v1/jobs/{job['id']}/retry").status_code == 409
        cancelled = c.post(f"/v1/jobs/{job['id']}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        again = c.post(f"/v1/jobs/{job['id']}/cancel")
        assert again.status_code == 409
        assert again.json()["type"] == "urn:treadle:problem:job-finished"
        retried = c.post(f"/v1/jobs/{job['id']}/retry")
        assert retried.status_code == 200 and retried.json()["status"] == "queued"


def test_queues_stats_and_patch(api: Api) -> None:
    with api.client() as c, api.client("admin") as admin:
        c.post("/v1/jobs", json={"task": "noop", "queue": "q1"})
        qs = {q["name"]: q for q in c.get("/v1/queues").json()["queues"]}
        assert qs["q1"]["depth"] == 1 and qs["q1"]["paused"] is False
        assert c.patch("/v1/queues/q1", json={"paused": True}).status_code == 403
        r = admin.patch("/v1/queues/q1", json={"paused": True, "concurrency_limit": 3})
        assert r.status_code == 200, r.text
        assert r.json()["paused"] is True and r.json()["concurrency_limit"] == 3
        r = admin.patch("/v1/queues/q1", json={"paused": False, "concurrency_limit": None})
        assert r.json()["paused"] is False and r.json()["concurrency_limit"] is None


def test_paused_queue_is_not_run(api: Api, worker: object) -> None:
    with api.client() as c, api.client("admin") as admin:
        admin.patch("/v1/queues/held", json={"paused": True})
        job = c.post("/v1/jobs", json={"task": "noop", "queue": "held"}).json()
        # Claims take the oldest job first: once a job enqueued after it has run, a
        # claim passed the held one over. (Waiting on that, not on a sleep.)
        later = c.post("/v1/jobs", json={"task": "noop"}).json()
        assert wait_finished(c, later["id"])["status"] == "succeeded"
        assert c.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
        admin.patch("/v1/queues/held", json={"paused": False})
        assert wait_finished(c, job["id"])["status"] == "succeeded"


def test_real_processes_server_and_worker(db_url: str) -> None:
    """`treadle server` and `treadle worker` as separate OS processes."""
    port = free_port()
    env = {"TREADLE_ADMIN_KEY": ADMIN_KEY, "TREADLE_WEBHOOK_SECRET": "s" * 20}
    app = ["--app", "tests.e2e.api.tasks_app:app", "--db", db_url]
    server = treadle_cli("server", *app, "--port", str(port), "--log-level", "warning", env=env)
    worker = treadle_cli("worker", *app, "--concurrency", "2", "--log-level", "warning", env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            assert server.poll() is None, "server exited"
            time.sleep(0.1)
        with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
            r = c.post("/v1/run", json={"task": "add", "payload": {"a": 1, "b": 1}})
            assert r.status_code == 200, r.text
            assert r.json()["result"] == 2 and r.json()["tenant"] == "default"
            job = c.post("/v1/jobs", json={"task": "echo", "payload": {"k": "v"}}).json()
            assert wait_finished(c, job["id"])["result"] == {"k": "v"}
    finally:
        for p in (worker, server):
            p.terminate()
        for p in (worker, server):
            p.wait(15)


def test_extra_worker_thread_helper_smoke(api: Api) -> None:
    with api_worker(api.treadle, queues=("only-this",)), api.client() as c:
        job = c.post("/v1/jobs", json={"task": "noop", "queue": "only-this"}).json()
        assert wait_finished(c, job["id"])["status"] == "succeeded"
