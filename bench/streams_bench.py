"""Live job streams (ADR 0011): emit throughput per worker and ctx.emit -> SSE latency.

    .venv/bin/python -m bench.streams_bench [--backends sqlite postgres] [--items N]

One process: a real uvicorn server (API in a thread), one in-process worker, one SSE
client (httpx). Throughput: one job emits ``--items`` items as fast as it can; the rate is
items over the time until the job's record is final (every item durably written).
Latency: a job emits ``--probes`` items ``--interval`` apart, each carrying its emit
time; the client reads them over ``GET /v1/jobs/{id}/stream`` and records arrival - emit.
The pacing wait is the workload, not a wait for a condition.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

import httpx

from bench.common import ADMIN_KEY as ADMIN
from bench.common import dump_json, latency_summary, log, scratch_database
from tests.support.pg import free_port
from treadle.api import ApiConfig, start_in_thread
from treadle.app import Treadle
from treadle.context import JobContext
from treadle.testing import migrated, run_worker


def _app(url: str, listening: threading.Event) -> Treadle:
    app = Treadle(migrated(url))

    @app.task(name="burst", pass_context=True, retries=0, timeout=600)
    def burst(n: int, ctx: JobContext) -> int:
        for i in range(n):
            ctx.emit("token", {"i": i})
        return n

    @app.task(name="probe", pass_context=True, retries=0, timeout=600)
    def probe(n: int, interval: float, ctx: JobContext) -> int:
        pace = threading.Event()
        listening.wait(30)  # latency, not the replay of what came before the client
        for i in range(n):
            ctx.emit("probe", {"i": i, "t": time.time()})
            pace.wait(interval)
        return n

    return app


def run(backend: str, items: int, probes: int, interval: float) -> dict[str, Any]:
    with scratch_database(backend, "treadle_streams_bench") as url:
        listening = threading.Event()
        app = _app(url, listening)
        port = free_port()
        server = start_in_thread(app, port=port, config=ApiConfig(admin_key=ADMIN))
        try:
            with run_worker(app, concurrency=2):
                t0 = time.perf_counter()
                app.defer("burst", {"n": items}).wait(600)
                burst_s = time.perf_counter() - t0
                samples: list[float] = []
                job = app.defer("probe", {"n": probes, "interval": interval})
                headers = {"Authorization": f"Bearer {ADMIN}"}
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers,
                                  timeout=120) as client, \
                        client.stream("GET", f"/v1/jobs/{job.id}/stream") as resp:
                    event = ""
                    for line in resp.iter_lines():
                        if line.startswith("event: "):
                            event = line[7:]
                            listening.set()
                        elif line.startswith("data: ") and event == "item":
                            data = json.loads(line[6:])["data"]
                            samples.append((time.time() - data["t"]) * 1000)
                        elif line.startswith("data: ") and event == "end":
                            break
        finally:
            server.should_exit = True
            app.close()
    return {"backend": backend, "emit_items": items, "emit_seconds": round(burst_s, 3),
            "emit_items_per_s": round(items / burst_s), "latency": latency_summary(samples)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    ap.add_argument("--items", type=int, default=20_000)
    ap.add_argument("--probes", type=int, default=300)
    ap.add_argument("--interval", type=float, default=0.01)
    args = ap.parse_args()
    results = []
    for backend in args.backends:
        log(f"streams bench on {backend}")
        results.append(run(backend, args.items, args.probes, args.interval))
        log(json.dumps(results[-1]))
    print(dump_json({"streams": results}))


if __name__ == "__main__":
    main()
