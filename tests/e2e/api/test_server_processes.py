"""``treadle server --workers 2`` (ADR 0026): processes share the port, each commits its
own submissions, answers without Nagle's wait (ADR 0033), and the server stops cleanly."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.e2e.api.conftest import ADMIN_KEY, ROOT
from tests.e2e.api.tasks_app import build_app
from tests.support.pg import free_port


def test_two_server_processes_serve_one_port(db_url: str) -> None:
    port = free_port()
    env = {**os.environ, "TREADLE_ADMIN_KEY": ADMIN_KEY,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    server = subprocess.Popen(
        [sys.executable, "-m", "treadle", "server", "--app", "tests.e2e.api.tasks_app:app",
         "--db", db_url, "--port", str(port), "--workers", "2", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # each process loads the app; the host is busy
        while True:
            assert server.poll() is None, server.communicate()
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)

        # With Nagle on (ADR 0033) every answer on a keep-alive connection took >= 40 ms
        # (the body waited for the client's delayed ACK of the head); now a few ms.
        with httpx.Client(base_url=base, timeout=30) as c:
            times = []
            for _ in range(30):
                t0 = time.perf_counter()
                assert c.get("/healthz").status_code == 200
                times.append(time.perf_counter() - t0)
        assert statistics.median(times) < 0.025, times

        def submit(i: int) -> int:
            with httpx.Client(base_url=base, timeout=30,
                              headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
                r = c.post("/v1/jobs", json={"task": "add", "payload": {"a": i, "b": 1}})
                assert r.status_code == 202, r.text
                return int(r.json()["id"])

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(submit, range(40)))
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err.decode()[-2000:]
    assert len(set(ids)) == 40
    treadle = build_app(db_url)
    try:
        assert sorted(j.id for j in treadle.list_jobs()) == sorted(ids)
    finally:
        treadle.close()
