"""Workflows over HTTP (submit like a task, POST /v1/events, steps) and the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.api.conftest import ADMIN_KEY, tenant_keys
from tests.integration.workflows.conftest import Running
from tests.integration.workflows.procs import ROOT, wait_until
from tests.support.pg import free_port
from treadle import JobStatus, Treadle
from treadle.api import ApiConfig, start_in_thread
from treadle.workflows import MAX_EVENT_BYTES, WorkflowContext


def build(app: Treadle) -> Treadle:
    @app.task(name="double", retries=0)
    def double(x: int) -> int:
        return 2 * x

    @app.workflow(name="approval", retries=0)
    def approval(ctx: WorkflowContext, who: str) -> dict[str, Any]:
        ok = ctx.wait_event(f"approve:{who}")
        parts = ctx.map("double", double, [{"x": x} for x in (1, 2, 3)])
        return {"approved": ok, "parts": parts}

    return app


@pytest.fixture
def served(db_url: str) -> Iterator[tuple[Treadle, str, dict[str, str]]]:
    app = build(Treadle(db_url))
    keys = tenant_keys(app)
    port = free_port()
    server = start_in_thread(app, host="127.0.0.1", port=port,
                             config=ApiConfig(admin_key=ADMIN_KEY))
    try:
        yield app, f"http://127.0.0.1:{port}", keys
    finally:
        server.should_exit = True
        time.sleep(0.05)
        app.close()


def client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_submit_send_event_and_read_steps_over_http(
    served: tuple[Treadle, str, dict[str, str]],
) -> None:
    app, url, keys = served
    with client(url, keys["a"]) as a, client(url, keys["b"]) as b:
        _http_flow(app, a, b)


def _http_flow(app: Treadle, a: httpx.Client, b: httpx.Client) -> None:
    r = a.post("/v1/jobs", json={"task": "approval", "payload": {"who": "acme"}})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["kind"] == "workflow"
    with Running(app):
        wait_until(lambda: a.get(f"/v1/jobs/{job['id']}").json()["status"] == "waiting", 20,
                   "the wait")
        # Another tenant's event with the same key does not reach it.
        r = b.post("/v1/events", json={"key": "approve:acme", "payload": {"by": "intruder"}})
        assert r.status_code == 202 and r.json()["woken"] == []
        r = a.post("/v1/events", json={"key": "approve:acme", "payload": {"by": "ops"}})
        assert r.status_code == 202 and r.json()["woken"] == [job["id"]]
        wait_until(lambda: a.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded", 20,
                   "the workflow")
    body = a.get(f"/v1/jobs/{job['id']}").json()
    assert body["result"] == {"approved": {"by": "ops"}, "parts": [2, 4, 6]}
    steps = a.get(f"/v1/jobs/{job['id']}/steps").json()["steps"]
    assert [s["name"] for s in steps] == ["wait_event@0", "double"]
    assert len(steps[1]["children"]) == 3 and steps[1]["status"] == "completed"
    assert b.get(f"/v1/jobs/{job['id']}/steps").status_code == 404


def test_an_event_over_the_size_limit_is_413(
    served: tuple[Treadle, str, dict[str, str]],
) -> None:
    _, url, keys = served
    with client(url, keys["a"]) as a:
        r = a.post("/v1/events", json={"key": "k", "payload": "x" * (MAX_EVENT_BYTES + 1)})
    assert r.status_code == 413, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


def test_cli_events_send_and_jobs_show_tree(db_url: str, tmp_path: object) -> None:
    app = build(Treadle(db_url))
    h = app.get_task("approval").defer(who="cli")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TREADLE_DATABASE_URL": db_url}
    with Running(app):
        wait_until(lambda: app.get_job(h.id).status is JobStatus.WAITING, 20, "the wait")
        out = subprocess.run(
            [sys.executable, "-m", "treadle", "events", "send", "approve:cli",
             "--payload", '{"by": "cli"}'],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "sent to 'approve:cli'" in out.stdout and f"woke job {h.id}" in out.stdout
        assert h.wait(20).status is JobStatus.SUCCEEDED
    show = subprocess.run([sys.executable, "-m", "treadle", "jobs", "show", str(h.id)],
                          env={**env, "COLUMNS": "200"}, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert show.returncode == 0, show.stderr
    assert "wait_event@0" in show.stdout and "double (map) completed" in show.stdout
    assert show.stdout.count("double (task) succeeded") == 3  # the children, in the tree
    app.close()


def test_the_ui_job_page_shows_steps_and_children(db_url: str) -> None:
    import re
    import threading

    import uvicorn

    from treadle.api import create_app
    from treadle.ui import mount

    app = build(Treadle(db_url))
    keys = tenant_keys(app)
    web = create_app(app, ApiConfig(admin_key=ADMIN_KEY))
    mount(web, app, secret="workflow-ui-tests-secret-0123456789")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    h = app.get_task("approval").defer(who="ui")
    try:
        with Running(app):
            wait_until(lambda: app.get_job(h.id).status is JobStatus.WAITING, 20, "the wait")
            app.send_event("approve:ui", {"by": "ui"})
            assert h.wait(20).status is JobStatus.SUCCEEDED
        wait_until(lambda: server.started, 10, "the server")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            form = http.get("/login").text
            token = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert token is not None
            r = http.post("/login", data={"api_key": keys["admin"],
                                          "csrf_token": token.group(1)})
            assert r.status_code in (200, 303), r.text
            page = http.get(f"/jobs/{h.id}").text
    finally:
        server.should_exit = True
    assert 'data-testid="steps"' in page and "wait_event@0" in page
    assert page.count('href="/jobs/') >= 3  # the three children, linked
    assert "badge st-completed" in page
    app.close()
