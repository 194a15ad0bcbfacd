"""Dynamic workers over HTTP: real uvicorn, a real Worker thread with the code executor,
real sandboxes (bubblewrap, V8), on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.api.conftest import ADMIN_KEY, Api, tenant_keys
from tests.e2e.api.tasks_app import build_app
from tests.support.pg import free_port
from tests.support.sandbox import require_bwrap
from treadle.api import ApiConfig, start_in_thread
from treadle.sandbox import SandboxManager
from treadle.testing import run_worker

PY_ECHO = "def handler(input, env):\n    print('py got', input)\n    return {'double': input * 2}"
JS_COUNTER = (
    "let n = 0;\nasync function handler(input, env) {\n  n += 1;\n"
    "  console.log('js run', n);\n  return {n, input};\n}"
)


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[SandboxManager]:
    require_bwrap()
    mgr = SandboxManager(python_pool_size=2, js_hosts=1, get_cache_capacity=16)
    mgr.warm_up()
    yield mgr
    mgr.close()


@pytest.fixture
def dapi(db_url: str, sandboxes: SandboxManager) -> Iterator[Api]:
    """The API with dynamic workers enabled, and one worker process-thread running them."""
    treadle = build_app(db_url, sandboxes)
    treadle.migrate()
    keys = tenant_keys(treadle)
    port = free_port()
    server = start_in_thread(treadle, host="127.0.0.1", port=port,
                             config=ApiConfig(admin_key=ADMIN_KEY, sync_window=15.0))
    try:
        with run_worker(treadle, concurrency=2):
            yield Api(f"http://127.0.0.1:{port}", treadle, keys)
    finally:
        server.should_exit = True
        time.sleep(0.05)
        treadle.close()


def _register(c: httpx.Client, code: str, language: str, **kw: Any) -> dict[str, Any]:
    r = c.post("/v1/dynamic-workers", json={"code": code, "language": language, **kw})
    assert r.status_code in (200, 201), r.text
    data: dict[str, Any] = r.json()
    return data


def _poll(c: httpx.Client, job_id: int, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = c.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} not finished: {job}"
        time.sleep(0.05)


def test_register_is_content_addressed_and_tenant_scoped(dapi: Api) -> None:
    with dapi.client("a") as a, dapi.client("b") as b:
        r1 = a.post("/v1/dynamic-workers", json={"code": PY_ECHO, "language": "python",
                                         "name": "echo", "limits": {"timeout": 3}})
        assert r1.status_code == 201, r1.text
        w = r1.json()
        assert w["id"].startswith("dw_")
        assert r1.headers["Location"] == f"/v1/dynamic-workers/{w['id']}"
        assert w["tenant"] == "tenant-a" and w["name"] == "echo" and w["code"] == PY_ECHO
        assert w["limits"]["timeout"] == 3 and w["config"] == {
            "allow_wasm": False, "fetch_allow": [], "kv": False}
        again = a.post("/v1/dynamic-workers", json={"code": PY_ECHO, "language": "python",
                                            "name": "echo", "limits": {"timeout": 3}})
        assert again.status_code == 200 and again.json()["id"] == w["id"]
        changed = _register(a, PY_ECHO + "\n", "python", limits={"timeout": 3})
        assert changed["id"] != w["id"]
        other_limits = _register(a, PY_ECHO, "python", limits={"timeout": 4})
        assert other_limits["id"] != w["id"]

        assert a.get(f"/v1/dynamic-workers/{w['id']}").json()["code"] == PY_ECHO
        listed = a.get("/v1/dynamic-workers").json()["workers"]
        assert {x["id"] for x in listed} == {w["id"], changed["id"], other_limits["id"]}
        assert all(x["code"] is None for x in listed)
        with dapi.client("a_read") as reader:
            assert reader.get(f"/v1/dynamic-workers/{w['id']}").status_code == 200
            assert reader.post("/v1/dynamic-workers", json={"code": PY_ECHO,
                                                    "language": "python"}).status_code == 403
            assert reader.post(f"/v1/dynamic-workers/{w['id']}/run", json={}).status_code == 403

        # Tenant b sees nothing of tenant a's, and cannot run it.
        r = b.get(f"/v1/dynamic-workers/{w['id']}")
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")
        assert b.get("/v1/dynamic-workers").json()["workers"] == []
        assert b.post(f"/v1/dynamic-workers/{w['id']}/run", json={"input": 1}).status_code == 404
        assert b.get("/v1/dynamic-workers/not-an-id").status_code == 404
        # The same code registered by b is b's own row (same content id, other tenant).
        mine = b.post("/v1/dynamic-workers", json={"code": PY_ECHO, "language": "python",
                                          "limits": {"timeout": 3}})
        assert mine.status_code == 201 and mine.json()["tenant"] == "tenant-b"
        assert a.get(f"/v1/dynamic-workers/{w['id']}").json()["name"] == "echo"


def test_register_refuses_bad_limits_and_language(dapi: Api) -> None:
    with dapi.client("a") as a:
        for body in (
            {"code": PY_ECHO, "language": "ruby"},
            {"code": PY_ECHO, "language": "python", "limits": {"timeout": 0}},
            {"code": PY_ECHO, "language": "python", "limits": {"memory_mb": 10**9}},
            {"code": PY_ECHO, "language": "python", "limits": {"bogus": 1}},
            {"code": "   ", "language": "python"},
            {"code": PY_ECHO, "language": "python", "fetch_allow": ["has space"]},
        ):
            r = a.post("/v1/dynamic-workers", json=body)
            assert r.status_code == 422, (body, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
        assert a.get("/v1/dynamic-workers").json()["workers"] == []
        w = _register(a, PY_ECHO, "python")
        r = a.post(f"/v1/dynamic-workers/{w['id']}/run", json={"limits": {"timeout": -1}})
        assert r.status_code == 422
        r = a.post(f"/v1/dynamic-workers/{w['id']}/run", json={"mode": "warm"})
        assert r.status_code == 422
        assert a.get("/v1/jobs").json()["jobs"] == []


def test_run_load_and_get_sync(dapi: Api) -> None:
    with dapi.client("a") as a:
        py = _register(a, PY_ECHO, "python")
        r = a.post(f"/v1/dynamic-workers/{py['id']}/run", json={"input": 21})
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["status"] == "succeeded" and job["result"] == {"double": 42}
        assert job["kind"] == "code" and job["task"] == f"dynamic:{py['id']}"
        assert r.headers["Location"] == f"/v1/jobs/{job['id']}"

        js = _register(a, JS_COUNTER, "javascript", limits={"timeout": 3})
        loads = [a.post(f"/v1/dynamic-workers/{js['id']}/run", json={"input": i, "mode": "load"})
                 .json()["result"] for i in range(2)]
        assert loads == [{"n": 1, "input": 0}, {"n": 1, "input": 1}]
        gets = [a.post(f"/v1/dynamic-workers/{js['id']}/run", json={"input": i, "mode": "get"})
                .json()["result"]["n"] for i in range(3)]
        # A warm instance (reuse is not guaranteed, but here it is; the sandbox manager is
        # shared by both backends' runs, so the count may not start at 1).
        assert gets[1:] == [gets[0] + 1, gets[0] + 2]
        logs = a.get(f"/v1/jobs/{job['id']}/logs").json()["logs"]
        assert [x["message"] for x in logs] == ["py got 21"]


def test_run_async_and_poll(dapi: Api) -> None:
    with dapi.client("a") as a:
        w = _register(a, JS_COUNTER, "javascript")
        r = a.post(f"/v1/dynamic-workers/{w['id']}/run", params={"async": "true"},
                   json={"input": 5})
        assert r.status_code == 202, r.text
        assert r.headers["Location"] == f"/v1/jobs/{r.json()['id']}"
        assert _poll(a, r.json()["id"])["result"] == {"n": 1, "input": 5}
        r2 = a.post(f"/v1/dynamic-workers/{w['id']}/run", json={"input": 6, "async": True})
        assert r2.status_code == 202
        assert _poll(a, r2.json()["id"])["result"] == {"n": 1, "input": 6}
        # A sync run whose wait is 0 answers 202 at once too.
        r3 = a.post(f"/v1/dynamic-workers/{w['id']}/run", json={"input": 7, "wait": 0})
        assert r3.status_code in (200, 202)
        assert _poll(a, r3.json()["id"])["status"] == "succeeded"


def test_run_idempotency_key(dapi: Api) -> None:
    with dapi.client("a") as a:
        w = _register(a, PY_ECHO, "python")
        h = {"Idempotency-Key": "k-run-1"}
        first = a.post(f"/v1/dynamic-workers/{w['id']}/run", json={"input": 1}, headers=h)
        second = a.post(f"/v1/dynamic-workers/{w['id']}/run", json={"input": 1}, headers=h)
        assert first.json()["id"] == second.json()["id"]
        other = a.post(f"/v1/dynamic-workers/{w['id']}/run", json={"input": 2}, headers=h)
        assert other.status_code == 409


@pytest.mark.parametrize(
    ("language", "code", "expected", "line"),
    [
        ("javascript",
         "async function handler(input, env) { console.log('hi', input.x); return input.x + 1 }",
         3, "hi 2"),
        ("python",
         "def handler(input, env):\n    print('hi', input['x'])\n    return input['x'] + 1",
         3, "hi 2"),
    ],
)
def test_inline_run_is_a_recorded_job(
    dapi: Api, language: str, code: str, expected: int, line: str
) -> None:
    with dapi.client("a") as a:
        r = a.post("/v1/run", json={"code": code, "language": language, "input": {"x": 2},
                                    "limits": {"timeout": 5, "cpu_seconds": 5, "memory_mb": 128,
                                               "max_output_bytes": 4096}})
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["status"] == "succeeded" and job["result"] == expected
        assert job["kind"] == "code" and job["tenant"] == "tenant-a"
        events = a.get(f"/v1/jobs/{job['id']}/events").json()["events"]
        assert [e["to_status"] for e in events][-1] == "succeeded"
        assert "running" in [e["to_status"] for e in events]
        logs = a.get(f"/v1/jobs/{job['id']}/logs").json()["logs"]
        assert [x["message"] for x in logs] == [line]
        # The snippet is stored (content-addressed) as the tenant's worker.
        wid = job["payload"]["worker_id"]
        assert a.get(f"/v1/dynamic-workers/{wid}").json()["code"] == code
        with dapi.client("b") as b:
            assert b.get(f"/v1/jobs/{job['id']}").status_code == 404


@pytest.mark.parametrize(
    ("language", "code", "limits", "error_class"),
    [
        ("python", "import socket\ndef handler(i, env):\n"
         "    print('about to connect')\n"
         "    socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(('1.1.1.1', 80))",
         {"timeout": 5}, "sandbox_violation"),
        ("javascript", "function handler() { while (true) {} }", {"timeout": 1}, "timeout"),
        ("python", "def handler(i, env):\n    return 'x' * 100000", {"max_output_bytes": 1000},
         "resource_exhausted"),
        ("python", "def handler(i, env)\n    return 1", None, "invalid_input"),
        ("javascript", "function handler( { return 1 }", None, "invalid_input"),
        ("javascript", "function nothing() {}", None, "invalid_input"),
        ("python", "def handler(i, env):\n    print('oops coming')\n    raise ValueError('mine')",
         None, "permanent"),
    ],
)
def test_hostile_and_broken_inline_runs_are_classified(
    dapi: Api, language: str, code: str, limits: dict[str, Any] | None, error_class: str
) -> None:
    with dapi.client("a") as a:
        body: dict[str, Any] = {"code": code, "language": language, "input": None}
        if limits:
            body["limits"] = limits
        r = a.post("/v1/run", json=body)
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["status"] == "failed", job
        assert job["error"]["class"] == error_class, job["error"]
        assert job["attempt"] == 1  # never retried: the code's own doing
        if error_class == "permanent":
            assert "mine" in job["error"]["message"]
        if "print(" in code:  # console output before the failure is kept with the attempt
            logs = [x["message"] for x in a.get(f"/v1/jobs/{job['id']}/logs").json()["logs"]]
            assert logs and logs[0] in ("about to connect", "oops coming")
        # The worker still serves the next run.
        ok = a.post("/v1/run", json={"code": "function handler(i) { return i }",
                                     "language": "javascript", "input": 9})
        assert ok.status_code == 200 and ok.json()["result"] == 9


def test_openapi_documents_the_worker_routes(dapi: Api) -> None:
    spec = httpx.get(f"{dapi.url}/openapi.json").json()
    paths = spec["paths"]
    assert {"post", "get"} <= set(paths["/v1/dynamic-workers"])
    assert "get" in paths["/v1/dynamic-workers/{worker_id}"]
    run = paths["/v1/dynamic-workers/{worker_id}/run"]["post"]
    assert {"200", "202", "404", "422"} <= set(run["responses"])
    assert any(p["name"] == "async" for p in run["parameters"])
    schemas = spec["components"]["schemas"]
    assert {"code", "language", "input", "limits", "task"} <= set(
        schemas["RunRequest"]["properties"])
    assert set(schemas["LimitsIn"]["properties"]) >= {
        "timeout", "cpu_seconds", "memory_mb", "max_output_bytes"}
    assert schemas["RegisterWorker"]["required"] == ["code", "language"]


OLD_PREFIX_SINCE = "@1795996800"  # 2026-11-30T00:00:00Z, when /v1/workers was renamed


def test_old_paths_still_answer_marked_deprecated(dapi: Api) -> None:
    """`/v1/workers` (the first name) is served by the `/v1/dynamic-workers` routes; every
    answer on it, errors included, says it is deprecated and names its successor."""
    with dapi.client("a") as a:
        r = a.post("/v1/workers", json={"code": PY_ECHO, "language": "python", "name": "old"})
        assert r.status_code == 201, r.text
        wid = r.json()["id"]
        assert r.headers["Deprecation"] == OLD_PREFIX_SINCE
        assert r.headers["Link"] == '</v1/dynamic-workers>; rel="successor-version"'
        assert r.headers["Location"] == f"/v1/dynamic-workers/{wid}"
        new = a.get(f"/v1/dynamic-workers/{wid}")
        assert "Deprecation" not in new.headers and "Link" not in new.headers
        old = a.get(f"/v1/workers/{wid}")
        assert old.json() == new.json() and old.headers["Deprecation"] == OLD_PREFIX_SINCE
        assert old.headers["Link"] == f'</v1/dynamic-workers/{wid}>; rel="successor-version"'
        assert [w["id"] for w in a.get("/v1/workers").json()["workers"]] == [wid]
        run = a.post(f"/v1/workers/{wid}/run", json={"input": 4})
        assert run.status_code == 200 and run.json()["result"] == {"double": 8}
        assert run.headers["Deprecation"] == OLD_PREFIX_SINCE
        # Errors come from the same handlers, with the same marks.
        missing = a.get("/v1/workers/dw_000000000000000000000000")
        assert missing.status_code == 404 and missing.json()["type"].endswith("worker-not-found")
        assert missing.headers["Deprecation"] == OLD_PREFIX_SINCE
        bad = a.post("/v1/workers", json={"code": PY_ECHO, "language": "ruby"})
        assert bad.status_code == 422 and bad.headers["Deprecation"] == OLD_PREFIX_SINCE
        # A prefix matches whole path segments only; hostile paths are plain 404s.
        for path in ("/v1/workersX", "/v1/workers%00", "/v1/workers/%ED%A0%80/run"):
            r = a.get(path)
            assert r.status_code in (404, 405), (path, r.text)
            assert ("Deprecation" in r.headers) == path.startswith("/v1/workers/"), path
    with dapi.client(None) as anon:  # unauthenticated: 401, still marked
        r = anon.get("/v1/workers")
        assert r.status_code == 401 and r.headers["Deprecation"] == OLD_PREFIX_SINCE


def test_openapi_lists_only_the_new_paths(dapi: Api) -> None:
    paths = httpx.get(f"{dapi.url}/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/v1/workers")]
    assert "/v1/dynamic-workers" in paths
