"""HTTP API benchmark: submit throughput and sync-run latency, on SQLite and PostgreSQL.

    python -m bench.http_bench [--backends sqlite,postgres] [--rounds 3]
        [--client httpx,raw,wrk] [--wrk-seconds 10] [--server-workers 1] [--http auto]
        [--auth admin|tenant]

The quiet-machine run of issue 13's target (ADR 0026): both stores with one server
process, then PostgreSQL with two (one per core):

    python -m bench.http_bench --client wrk,raw,httpx
    python -m bench.http_bench --backends postgres --client wrk,raw --server-workers 2 \
        --runs 0 --out bench/results/http-2p

Real processes: ``treadle server`` and ``treadle worker`` (``--app
bench.apps.treadle_app:app``), driven by httpx clients over keep-alive connections.

- submit: ``POST /v1/jobs`` from ``--clients`` concurrent clients (threads, one
  keep-alive connection each) for ``--submit-jobs`` jobs; no worker runs meanwhile,
  so this is the API + store enqueue path alone.
- submit with ``wrk`` (``--client wrk``, Debian package ``wrk``): C load generator, 16
  connections for ``--wrk-seconds``; the client takes little of the 2 shared cores.
- run: ``POST /v1/run`` of the no-op task, one client, sequential, with one worker
  process running; latency is client-side, end to end (submit, claim, run,
  complete, wake the waiter, answer).

Results: bench/results/http.json and http.md (medians over rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench import http_load
from bench.common import ADMIN_KEY as ADMIN
from bench.common import (
    nearest_rank,
    results_doc,
    results_header,
    scratch_database,
    write_results,
)
from tests.support.pg import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = os.environ.get("TREADLE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _cli(*args: str, src: str | None = None) -> subprocess.Popen[bytes]:
    """``python -m treadle ARGS``; ``src`` first on the path runs another version."""
    path = os.pathsep.join([*([src] if src else []), str(ROOT)])
    env = {**os.environ, "PYTHONPATH": path, "TREADLE_ADMIN_KEY": ADMIN}
    return subprocess.Popen([sys.executable, "-m", "treadle", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _migrate(url: str, src: str | None) -> None:
    path = os.pathsep.join([*([src] if src else []), str(ROOT)])
    subprocess.run([sys.executable, "-m", "treadle", "migrate", "--db", url],
                   cwd=ROOT, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": path})


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and its children so far (``/proc``)."""
    return http_load.tree_cpu_seconds(pid)


def _wait_up(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120  # --workers children each load the app
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("server did not come up")


SUBMIT_BODY = json.dumps({"task": "noop", "queue": "bench-submit"}).encode()


def bench_submit(base: str, clients: int, jobs: int, key: str = ADMIN) -> float:
    per = jobs // clients
    barrier = threading.Barrier(clients + 1)
    errors: list[str] = []

    def client() -> None:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"},
                          timeout=30) as c:
            c.get("/healthz")  # open the keep-alive connection before timing
            barrier.wait()
            for _ in range(per):
                r = c.post("/v1/jobs", json={"task": "noop", "queue": "bench-submit"})
                if r.status_code != 202:
                    errors.append(r.text)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} submits failed: {errors[0]}")
    return per * clients / elapsed


def bench_submit_raw(port: int, clients: int, jobs: int, key: str = ADMIN) -> float:
    """``POST /v1/jobs`` from ``clients`` keep-alive connections driven by one asyncio
    loop writing raw HTTP/1.1: the client costs a fraction of httpx's CPU, so on this
    2-core machine the figure is closer to what the server can take (ADR 0019)."""
    import asyncio

    body = SUBMIT_BODY
    request = (
        f"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    per = jobs // clients

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(per):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            payload = await reader.readexactly(length)
            if status != b"202":
                raise RuntimeError(f"submit failed: {status!r} {payload[:300]!r}")

    async def main() -> float:
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(clients)]
        try:
            t0 = time.perf_counter()
            await asyncio.gather(*(one(r, w) for r, w in conns))
            return per * clients / (time.perf_counter() - t0)
        finally:
            for _, w in conns:
                w.close()
                await w.wait_closed()

    return asyncio.run(main())


def bench_run(base: str, n: int, warmup: int = 30) -> list[float]:
    lat: list[float] = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"},
                      timeout=30) as c:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            r = c.post("/v1/run", json={"task": "noop"})
            dt = time.perf_counter() - t0
            if r.status_code != 200 or r.json()["status"] != "succeeded":
                raise RuntimeError(f"run failed: {r.status_code} {r.text}")
            if i >= warmup:
                lat.append(dt * 1000)
    return lat


def one_round(kind: str, clients: int, submit_jobs: int, runs: int,
              client_kinds: tuple[str, ...] = ("httpx",),
              src: str | None = None, server_args: tuple[str, ...] = (),
              wrk_seconds: float = 10.0, auth: str = "admin") -> dict[str, float]:
    with scratch_database(kind, "treadle_bench", PG_ADMIN) as url:
        _migrate(url, src)
        key = _tenant_key(url, src) if auth == "tenant" else ADMIN
        return _measure(url, clients, submit_jobs, runs, client_kinds, src, server_args,
                        wrk_seconds, key)


def _tenant_key(url: str, src: str | None) -> str:
    """A new submit key of tenant ``bench`` (``treadle keys create``): requests with it
    pay the key lookup that the admin key skips (ADR 0033: remembered for 1 s)."""
    path = os.pathsep.join([*([src] if src else []), str(ROOT)])
    out = subprocess.run([sys.executable, "-m", "treadle", "keys", "create", "--tenant",
                          "bench", "--scopes", "submit", "--db", url],
                         cwd=ROOT, check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": path})
    return out.stdout.strip().splitlines()[-1]


def _measure(url: str, clients: int, submit_jobs: int, runs: int,
             client_kinds: tuple[str, ...], src: str | None,
             server_args: tuple[str, ...] = (), wrk_seconds: float = 10.0,
             key: str = ADMIN) -> dict[str, float]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = ["--app", "bench.apps.treadle_app:app", "--db", url]
    server = _cli("server", *app, "--port", str(port), "--log-level", "warning",
                  *server_args, src=src)
    args = list(server_args)
    one_process = "--workers" not in args or args[args.index("--workers") + 1] == "1"
    worker: subprocess.Popen[bytes] | None = None
    try:
        _wait_up(base, server)
        bench_submit_raw(port, clients, 32 * clients, key)  # warm-up (every server process)
        out: dict[str, float] = {}
        for client in client_kinds:  # one after the other on the same server and database
            # The server's CPU per request does not depend on how much of the shared
            # machine it got: 1e6 / cpu_us is what one free core could serve.
            cpu0 = _cpu_seconds(server.pid)
            loop0 = http_load.loop_cpu_seconds(server.pid) if one_process else 0.0
            requests = submit_jobs
            if client == "raw":
                out["submit_raw_jobs_per_s"] = bench_submit_raw(port, clients, submit_jobs, key)
            elif client == "wrk":
                w = http_load.bench_submit_wrk(port, clients, wrk_seconds, key, SUBMIT_BODY)
                requests = int(w["requests"])
                out["submit_wrk_jobs_per_s"] = w["jobs_per_s"]
                out["submit_wrk_p50_ms"], out["submit_wrk_p99_ms"] = w["p50_ms"], w["p99_ms"]
            else:
                out["submit_jobs_per_s"] = bench_submit(base, clients, submit_jobs, key)
            per_request = (_cpu_seconds(server.pid) - cpu0) / requests * 1e6
            out[f"server_cpu_us_{client}"] = per_request
            if one_process:  # the event loop's share (the rest: committers, threads)
                loop = http_load.loop_cpu_seconds(server.pid) - loop0
                out[f"server_loop_cpu_us_{client}"] = loop / requests * 1e6
        if runs <= 0:
            return out
        worker = _cli("worker", *app, "--queues", "default", "--concurrency", "4",
                      "--log-level", "warning", src=src)
        time.sleep(1.5)  # worker start-up (import, first claim)
        lat = bench_run(base, runs)
        return {
            **out,
            "run_p50_ms": statistics.median(lat),
            "run_p90_ms": nearest_rank(lat, 90),
            "run_p99_ms": nearest_rank(lat, 99),
            "run_mean_ms": statistics.fmean(lat),
        }
    finally:
        for p in (worker, server):
            if p is not None:
                p.terminate()
                p.wait(15)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backends", default="sqlite,postgres")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--submit-jobs", type=int, default=4000)
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--client", default="httpx,raw,wrk",
                    help="submit clients, comma-separated: httpx (threads), raw (asyncio), "
                         "wrk (C; the Debian package)")
    ap.add_argument("--wrk-seconds", type=float, default=10.0)
    ap.add_argument("--server-workers", type=int, default=1,
                    help="treadle server --workers (processes sharing the port)")
    ap.add_argument("--http", default="auto", help="treadle server --http")
    ap.add_argument("--auth", default="admin", choices=("admin", "tenant"),
                    help="submit with the admin key, or a tenant's API key (looked up)")
    ap.add_argument("--baseline-src", default=None,
                    help="also run the server from this source tree (older code), "
                         "interleaved round by round")
    ap.add_argument("--out", default=str(RESULTS / "http"))
    args = ap.parse_args()
    client_kinds = tuple(args.client.split(","))
    versions: dict[str, str | None] = {"current": None}
    if args.baseline_src:
        versions = {"baseline": args.baseline_src, "current": None}
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    for kind in args.backends.split(","):
        rounds: dict[str, list[dict[str, float]]] = {v: [] for v in versions}
        for i in range(args.rounds):
            for version, src in versions.items():
                try:
                    server_args = () if src else (
                        "--http", args.http, "--workers", str(args.server_workers))
                    r = one_round(kind, args.clients, args.submit_jobs, args.runs,
                                  client_kinds, src, server_args, args.wrk_seconds,
                                  args.auth)
                except RuntimeError as exc:  # recorded, not hidden (the old code wedged)
                    print(f"{kind} {version} round {i + 1} failed: {exc}"[:400], flush=True)
                    r = {"failed": 1.0}
                print(f"{kind} {version} round {i + 1}: "
                      + ", ".join(f"{k}={v:.1f}" for k, v in r.items()), flush=True)
                rounds[version].append(r)
        for version, rs in rounds.items():
            ok = [r for r in rs if not r.get("failed")]
            medians = ({k: statistics.median(r[k] for r in ok) for k in ok[0]} if ok
                       else {"failed": 1.0})
            label = kind if version == "current" else f"{kind} ({version})"
            results[label] = {"median": medians, "rounds": rs}
    doc = results_doc(
        load_before,
        params={"clients": args.clients, "submit_jobs": args.submit_jobs,
                "runs": args.runs, "rounds": args.rounds, "worker_concurrency": 4,
                "client": list(client_kinds), "baseline_src": args.baseline_src,
                "wrk_seconds": args.wrk_seconds, "server_workers": args.server_workers,
                "http": args.http, "auth": args.auth},
        target={"run_p50_ms": 15.0, "submit_jobs_per_s": 4000.0},
        results=results,
    )
    write_results(Path(args.out), doc, _markdown(doc))


_AUTH = {"admin": "the admin key (no lookup)",
         "tenant": "a tenant's API key (looked up; remembered 1 s, ADR 0033)"}


def _markdown(doc: dict[str, Any]) -> str:
    p = doc["params"]
    lines = [
        "# HTTP API benchmark",
        "",
        *results_header(doc),
        "",
        f"Medians over {p['rounds']} rounds. Submit: `POST /v1/jobs`, {p['clients']} concurrent "
        f"keep-alive clients, {p['submit_jobs']} jobs, no worker running; `httpx`: one thread "
        "and httpx client per connection; `raw`: one asyncio loop writing raw HTTP/1.1 on the "
        "same number of connections (less client CPU on the shared 2 cores). Run: `POST "
        f"/v1/run` of a no-op task, 1 client, {p['runs']} sequential requests after warm-up, one "
        f"`treadle worker` process (concurrency {p['worker_concurrency']}); latency measured "
        "by the client, end to end. Server and worker are separate processes on the same host. "
        "Durable commits on both stores (SQLite WAL synchronous=FULL; PostgreSQL default).",
        "",
        "Server CPU µs/request: the API's user+system CPU time (all its processes with "
        "`--workers`) over the submit phase divided by the jobs, committer threads included; "
        "1e6 / that is what one free core could serve, whatever share of the machine the run "
        "got. Loop: the event loop thread's part of it (HTTP parsing, validation, answer). "
        f"`wrk`: C load generator, {p.get('wrk_seconds', 10):g} s per round. Server: "
        f"`--workers {p.get('server_workers', 1)} --http {p.get('http', 'auto')}`; "
        f"requests authenticated with {_AUTH[p.get('auth', 'admin')]}.",
        "",
        "| backend | client | submit jobs/s | server CPU µs/req | loop CPU µs/req |",
        "| --- | --- | ---: | ---: | ---: |",
    ]

    def cell(m: dict[str, float], key: str, fmt: str) -> str:
        return format(m[key], fmt) if key in m else "n/a"

    runs: list[str] = []
    for kind, r in doc["results"].items():
        m = r["median"]
        failed = sum(1 for x in r["rounds"] if x.get("failed"))
        if failed:
            lines.append(f"| {kind} | {failed} of {len(r['rounds'])} rounds failed (requests "
                         "timed out or 503) | | | |")
            if failed == len(r["rounds"]):
                continue
        for client in p["client"]:
            rate = "submit_jobs_per_s" if client == "httpx" else f"submit_{client}_jobs_per_s"
            lines.append(f"| {kind} | {client} | {cell(m, rate, '.0f')} | "
                         f"{cell(m, f'server_cpu_us_{client}', '.0f')} | "
                         f"{cell(m, f'server_loop_cpu_us_{client}', '.0f')} |")
        if "run_p50_ms" in m:
            runs.append(f"| {kind} | {cell(m, 'run_p50_ms', '.1f')} | "
                        f"{cell(m, 'run_p90_ms', '.1f')} | {cell(m, 'run_p99_ms', '.1f')} |")
    if runs:
        lines += ["", "| backend | run p50 ms | run p90 ms | run p99 ms |",
                  "| --- | ---: | ---: | ---: |", *runs]
    lines.append("")
    return "\n".join(lines)

if __name__ == "__main__":
    main()
