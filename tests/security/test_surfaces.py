"""Hostile input and egress (ADRs 0006, 0305) on the surfaces they were found on: HTTP and the CLI.

Class 4: payloads that cannot be stored are refused (422 problem+json, CLI exit 2) with
nothing stored; a result that cannot be stored fails its job as ``invalid_output`` and
the same worker carries on (``POST /v1/run``, a real ``treadle worker`` process).
Class 5: callback URLs to non-public addresses are refused at submit; ``env.fetch`` of
code registered and run over HTTP or the CLI cannot reach loopback (the API itself)
unless the operator allows it with ``TREADLE_EGRESS_ALLOW``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.api.conftest import ADMIN_KEY, Api, tenant_keys
from tests.e2e.api.tasks_app import build_app
from tests.security.app import register
from tests.security.running import Running, finished
from tests.security.target import loopback_target
from tests.support.pg import free_port
from treadle import Treadle
from treadle.api import ApiConfig, start_in_thread
from treadle.core.job import JobKind
from treadle.dynamic import DynamicWorkers
from treadle.egress import REFUSED
from treadle.executors import TaskExecutor
from treadle.testing import migrated
from treadle.worker import Worker, WorkerConfig

ROOT = Path(__file__).resolve().parents[2]
FETCH = (
    "def handler(url, env):\n"
    "    try:\n"
    "        r = env.fetch(url)\n"
    "    except Exception as exc:\n"
    "        return ['refused', str(exc)]\n"
    "    return [r['status'], r['body']]\n"
)


@pytest.fixture
def sapi(db_url: str) -> Iterator[Api]:
    """The HTTP API over the hostile tasks, with one worker thread, default egress."""
    treadle = register(build_app(db_url))
    treadle.migrate()
    keys = tenant_keys(treadle)
    port = free_port()
    server = start_in_thread(treadle, host="127.0.0.1", port=port,
                             config=ApiConfig(admin_key=ADMIN_KEY, sync_window=20.0))
    worker = Worker(treadle.store, {JobKind.TASK: TaskExecutor(treadle)},
                    WorkerConfig(concurrency=2, poll_interval=0.2))
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        yield Api(f"http://127.0.0.1:{port}", treadle, keys)
    finally:
        worker.stop()
        thread.join(15)
        server.should_exit = True
        time.sleep(0.05)
        treadle.close()


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    return body


def post_raw(c: httpx.Client, path: str, text: str) -> httpx.Response:
    return c.post(path, content=text.encode(), headers={"Content-Type": "application/json"})


def deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize(("payload_json", "needle"), [
    ('{"value": "\\ud800"}', "lone surrogate"),
    ('{"value": "a\\u0000b"}', "NUL"),
    ('{"val\\u0000ue": 1}', "NUL"),
    ('{"value": "\\udfff\\ud800"}', "lone surrogate"),
    ('{"value": ' + deep(150) + "}", "deeper than"),
    ('{"value": 1' + "0" * 400 + "}", "integer beyond"),
])
def test_http_payloads_that_cannot_be_stored_are_refused(
    sapi: Api, payload_json: str, needle: str
) -> None:
    with sapi.client() as c:
        for path in ("/v1/jobs", "/v1/run"):
            r = post_raw(c, path, '{"task": "give", "payload": ' + payload_json + "}")
            body = problem(r, 422)
            assert needle in body["detail"] and body["error_class"] == "invalid_input"
    assert sapi.treadle.list_jobs() == []


def test_http_bodies_nested_10000_deep_get_a_problem_not_a_crash(sapi: Api) -> None:
    with sapi.client() as c:
        for path in ("/v1/jobs", "/v1/run"):
            r = post_raw(c, path, '{"task": "give", "payload": {"value": ' + deep(10_000)
                         + "}}")
            assert 400 <= r.status_code < 500, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
        assert c.get("/healthz").status_code in (200, 404)  # the server still answers
    assert sapi.treadle.list_jobs() == []


def test_http_run_of_an_unstorable_result_fails_that_job_only(sapi: Api) -> None:
    with sapi.client() as c:
        bad = c.post("/v1/run", json={"task": "lone_surrogate"}).json()
        assert bad["status"] == "failed" and bad["error"]["class"] == "invalid_output", bad
        said = c.post("/v1/run", json={"task": "say_raw"}).json()
        assert said["status"] == "succeeded", said
        logs = c.get(f"/v1/jobs/{said['id']}/logs").json()["logs"]
        assert [entry["message"] for entry in logs][:2] == ["\ufffd lone", "nul \ufffd here"]
        ok = c.post("/v1/run", json={"task": "give", "payload": {"value": 5}}).json()
        assert ok["status"] == "succeeded" and ok["result"] == 5


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hook", "http://localhost:9/hook", "http://[::1]:9/hook",
    "http://127.1:9/hook", "http://2130706433/hook", "http://0.0.0.0/hook",
    "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook",
    "http://[::ffff:127.0.0.1]/hook", "http://user:pw@example.com/hook",
    "http://metadata.google.internal/computeMetadata/v1/",
])
def test_http_callback_urls_to_non_public_addresses_are_refused(sapi: Api, url: str) -> None:
    with sapi.client() as c:
        body = problem(c.post("/v1/jobs", json={"task": "give", "callback_url": url}), 422)
        assert body["error_class"] == "invalid_input" and "callback_url" in body["detail"]
    assert sapi.treadle.list_jobs() == []


def test_library_callback_urls_are_checked_at_submit_and_delivery(db_url: str) -> None:
    from treadle import InvalidInput
    from treadle.egress import EgressPolicy
    from treadle.store import JobFilter
    from treadle.webhooks import DELIVER_TASK, register_builtin_tasks

    with loopback_target() as target:
        app = register(Treadle(db_url))
        try:
            with pytest.raises(InvalidInput, match="callback_url"):
                app.defer("give", {"value": 1}, callback_url=target.url + "/hook")
            # A name that resolves to loopback passes the submit check (no DNS there) and
            # is refused at delivery, permanently, with the one message.
            app.egress = EgressPolicy(resolver=lambda host, port: ["127.0.0.1"])
            register_builtin_tasks(app, "secret-0123456789abcdef")
            h = app.defer("give", {"value": 1},
                          callback_url=f"http://hook.example:{target.port}/hook")
            with Running(app):
                assert finished(app, h.id).status.value == "succeeded"
                # Enqueued in the same transaction as the job's final state.
                (queued,) = app.list_jobs(JobFilter(task=DELIVER_TASK))
                delivery = finished(app, queued.id)
            assert delivery.status.value == "failed" and delivery.error is not None
            assert delivery.error.error_class.value == "permanent"
            assert delivery.error.message == f"callback not delivered: {REFUSED}"
            assert target.seen == []
        finally:
            app.close()


# -- the CLI ------------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "TREADLE_APP": "tests.security.app:app",
            "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    if "TREADLE_EGRESS_ALLOW" not in (env or {}):
        full.pop("TREADLE_EGRESS_ALLOW", None)
    return subprocess.run([sys.executable, "-m", "treadle", *args], env=full, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def start_worker(db: str, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "TREADLE_DATABASE_URL": db, **(env or {})}
    if "TREADLE_EGRESS_ALLOW" not in (env or {}):
        full.pop("TREADLE_EGRESS_ALLOW", None)
    with log.open("wb") as stderr:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "treadle", "worker", "--app", "tests.security.app:app",
             "--concurrency", "2", "--log-level", "warning"],
            env=full, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("payload", ['{"value": "\\ud800"}', '{"value": "\\u0000"}',
                                     '{"value": NaN}', '{"value": ' + deep(200) + "}"])
def test_cli_submit_refuses_unstorable_payloads_with_one_line(db_url: str, payload: str) -> None:
    proc = cli("submit", "give", "--payload", payload, "--db", db_url)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: payload"), proc.stderr
    app = Treadle(db_url)
    try:
        assert app.list_jobs() == []
    finally:
        app.close()


def test_a_worker_process_survives_a_lone_surrogate_and_nul(db_url: str, tmp_path: Path) -> None:
    app = register(Treadle(db_url))
    worker = start_worker(db_url, tmp_path / "worker.log")
    try:
        bad = app.defer("lone_surrogate")
        raw = app.defer("say_raw")
        for h in (bad, raw):
            finished(app, h.id, 60)
        assert app.get_job(bad.id).error.error_class.value == "invalid_output"  # type: ignore[union-attr]
        assert app.get_job(raw.id).status.value == "succeeded"
        assert finished(app, app.defer("give", {"value": 9}).id, 60).result == 9
    finally:
        stop(worker)
        app.close()
    assert "Traceback" not in (tmp_path / "worker.log").read_text(errors="replace")


def test_cli_worker_fetch_to_loopback_needs_the_operator_setting(
    sqlite_url: str, tmp_path: Path
) -> None:
    migrated(sqlite_url)  # core and the built-in kinds' tables, as `treadle migrate` does
    with loopback_target() as target:
        app = Treadle(sqlite_url)
        try:
            registry = app.use(DynamicWorkers()).registry
            wid = registry.register(FETCH, "python", {"timeout": 10},
                                    fetch_allow=["127.0.0.1"]).id
        finally:
            app.close()
        run_args = ("dynamic", "run", wid, "--input", json.dumps(target.url + "/x"),
                    "--wait-seconds", "60", "--json", "--db", sqlite_url)
        for env, expected in ((None, ["refused", REFUSED]),
                              ({"TREADLE_EGRESS_ALLOW": "127.0.0.1/32"},
                               [200, '{"served": "/x"}'])):
            worker = start_worker(sqlite_url, tmp_path / "worker.log", env)
            try:
                proc = cli(*run_args)
                assert proc.returncode == 0, proc.stderr
                assert json.loads(proc.stdout)["result"] == expected
            finally:
                stop(worker)
        assert target.seen == ["/x"]  # reached once: only when allowed


def test_http_registered_code_cannot_fetch_the_api_itself(dapi: Api) -> None:
    with dapi.client("a") as a:
        reg = a.post("/v1/dynamic-workers", json={"code": FETCH, "language": "python",
                                          "fetch_allow": ["127.0.0.1", "localhost"]})
        assert reg.status_code in (200, 201), reg.text
        wid = reg.json()["id"]
        for url in (f"{dapi.url}/v1/jobs", dapi.url.replace("127.0.0.1", "localhost")
                    + "/v1/keys"):
            job = a.post(f"/v1/dynamic-workers/{wid}/run", json={"input": url}).json()
            assert job["status"] == "succeeded", job
            assert job["result"] == ["refused", REFUSED], job



@pytest.mark.parametrize("body", [
    b'{"v": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # json.loads: RecursionError (was a 500)
    b'{"v": ' + b"[" * 200 + b"]" * 200 + b"}",
    b'{"v": "\\ud800"}',
    b'{"v": "a\\u0000"}',
    b'{"v": NaN}',
])
def test_signed_inbound_hook_bodies_that_cannot_be_stored_are_refused(
    sapi: Api, body: bytes
) -> None:
    from treadle.webhooks import signed_headers

    with sapi.client("admin") as admin, sapi.client(None) as sender:
        secret = admin.post("/v1/hooks", json={"name": "h", "task": "hooked"}).json()["secret"]
        headers = {**signed_headers(secret, body), "Content-Type": "application/json"}
        problem(sender.post("/v1/hooks/h", content=body, headers=headers), 422)
        weird_delivery = {**headers, "Treadle-Delivery-Id": "d\x7f1"}
        ok = b'{"v": 1}'
        weird_delivery.update(signed_headers(secret, ok))
        weird = sender.post("/v1/hooks/h", content=ok, headers=weird_delivery)
        # A control byte in a header: h11 passed it to the app (422); the C parser the
        # server uses now refuses the request itself (400). A problem either way (ADR 0026).
        problem(weird, 400 if weird.status_code == 400 else 422)
    assert sapi.treadle.list_jobs() == []


@pytest.mark.parametrize("args", [
    ("jobs", "list", "--queue", "\udcff"),  # a non-UTF-8 byte on the command line
    ("jobs", "list", "--task", "a\udcfe"),
    ("submit", "give", "--payload", '{"value": "\udcff"}'),
    ("submit", "give", "--idempotency-key", "k\udcff"),
])
def test_cli_arguments_that_are_not_text_get_one_line(db_url: str, args: tuple[str, ...]) -> None:
    proc = cli(*args, "--db", db_url)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
