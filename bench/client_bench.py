"""The remote client (ADR 0020): its cost over raw HTTP, and how soon a claim reaches a
stream listener.

    .venv/bin/python -m bench.client_bench [--backends sqlite postgres] [--calls N]

One process: a real uvicorn server (API in a thread) and one in-process worker.

* Overhead: ``--calls`` submits (``POST /v1/jobs``) and reads (``GET /v1/jobs/{id}``)
  with ``treadle.client.Client`` and with a bare ``httpx.Client`` (same headers, same
  bodies), interleaved call by call so both see the same machine load; medians per call.
* Claim -> listener: a job that sleeps 1 s is submitted while ``Client.stream`` follows
  it; latency is the arrival of its ``running`` state at the client minus the job's
  ``started_at`` (the claim's time, same machine clock). Measured with the hub's queued
  pacing and with it off (the 0.5 s safety tick alone, as before ADR 0020), alternating.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import httpx

from bench.common import ADMIN_KEY as ADMIN
from bench.common import dump_json, latency_summary, log, scratch_database
from tests.support.pg import free_port
from treadle.api import ApiConfig, start_in_thread
from treadle.app import Treadle
from treadle.client import Client
from treadle.streams import hub as hub_module
from treadle.testing import migrated, run_worker


def _app(url: str) -> Treadle:
    app = Treadle(migrated(url))
    app.migrate()

    @app.task(name="noop", retries=0)
    def noop() -> None:
        return None

    @app.task(name="hold", retries=0, timeout=60)
    def hold(seconds: float) -> None:
        time.sleep(seconds)  # the workload: a job that is running for a while

    return app


def _overhead(base: str, calls: int) -> dict[str, Any]:
    raw_submit: list[float] = []
    cli_submit: list[float] = []
    raw_get: list[float] = []
    cli_get: list[float] = []
    headers = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as raw, \
            Client(base, ADMIN) as client:
        for _ in range(calls):
            t = time.perf_counter()
            r = raw.post("/v1/jobs", json={"task": "noop", "payload": {}})
            job_id = r.json()["id"]
            raw_submit.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            handle = client.submit("noop", {})
            cli_submit.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            raw.get(f"/v1/jobs/{job_id}").json()
            raw_get.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            client.get_job(handle.id)
            cli_get.append((time.perf_counter() - t) * 1000)
    out = {}
    for name, raw_ms, cli_ms in (("submit", raw_submit, cli_submit),
                                 ("get_job", raw_get, cli_get)):
        r50, c50 = statistics.median(raw_ms), statistics.median(cli_ms)
        out[name] = {"raw_httpx_p50_ms": round(r50, 3), "client_p50_ms": round(c50, 3),
                     "ratio": round(c50 / r50, 3)}
    return out


def _claim_to_listener(app: Treadle, base: str, samples: int) -> dict[str, Any]:
    paced: list[float] = []
    unpaced: list[float] = []
    with Client(base, ADMIN) as client:
        for i in range(samples * 2):
            pacing = i % 2 == 0
            hub_module.QUEUED_PACE = 0.05 if pacing else 0.5
            # Due shortly: the client is following it while it is still queued.
            handle = client.submit("hold", {"seconds": 1.0}, delay=0.3)
            for ev in handle.stream():
                if ev.event == "state" and ev.status == "running":
                    arrived = time.time()
                    started = app.get_job(handle.id).started_at
                    assert started is not None
                    (paced if pacing else unpaced).append(
                        (arrived - started.timestamp()) * 1000)
                    break
            handle.wait(30)
    hub_module.QUEUED_PACE = 0.05
    return {"paced": latency_summary(paced), "safety_tick_only": latency_summary(unpaced)}


def run(backend: str, calls: int, samples: int) -> dict[str, Any]:
    with scratch_database(backend, "treadle_client_bench") as url:
        app = _app(url)
        port = free_port()
        server = start_in_thread(app, port=port, config=ApiConfig(admin_key=ADMIN))
        base = f"http://127.0.0.1:{port}"
        try:
            with run_worker(app, concurrency=2):
                overhead = _overhead(base, calls)
                claims = _claim_to_listener(app, base, samples)
        finally:
            server.should_exit = True
            app.close()
    return {"backend": backend, "calls": calls, "overhead": overhead,
            "claim_to_listener": claims}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--samples", type=int, default=10)
    args = ap.parse_args()
    results = []
    for backend in args.backends:
        log(f"client bench on {backend}")
        results.append(run(backend, args.calls, args.samples))
        log(json.dumps(results[-1]))
    print(dump_json({"client": results}))


if __name__ == "__main__":
    main()
