"""procrastinate side of the benchmark. Run with the procrastinate venv's python.

Prints one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def _env(dsn: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["BENCH_PG_URL"] = dsn
    env["PYTHONPATH"] = str(HERE)
    env.pop("BENCH_LATENCY_DIR", None)
    if extra:
        env.update(extra)
    return env


def _start_workers(
    dsn: str, n: int, concurrency: int, logdir: Path, extra: dict[str, str] | None = None
) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(n):
        log = open(logdir / f"procrastinate-worker-{i}.log", "wb")  # noqa: SIM115
        argv = [
            sys.executable,
            "-m",
            "procrastinate",
            "--app",
            "procrastinate_app.app",
            "worker",
            "--queues",
            "default",
            "--concurrency",
            str(concurrency),
        ]
        procs.append(
            subprocess.Popen(
                argv,
                env=_env(dsn, extra),
                cwd=HERE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return procs


def _stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _check(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is not None:
            raise RuntimeError(f"procrastinate worker exited early with {p.returncode}")


async def _setup(dsn: str) -> Any:
    os.environ["BENCH_PG_URL"] = dsn
    sys.path.insert(0, str(HERE))
    import procrastinate_app

    app = procrastinate_app.app
    await app.open_async()
    await app.schema_manager.apply_schema_async()
    return procrastinate_app


def _count_succeeded(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
        ).fetchone()
    assert row is not None
    return int(row[0])


async def cmd_enqueue(a: argparse.Namespace) -> dict[str, Any]:
    mod = await _setup(a.dsn)
    noop = mod.noop
    # warm the pool / prepared paths
    await noop.defer_async(x=-1)
    if a.mode == "single":
        t0 = time.perf_counter()
        for i in range(a.jobs):
            await noop.defer_async(x=i)
        dt = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        for start in range(0, a.jobs, a.batch_size):
            n = min(a.batch_size, a.jobs - start)
            await noop.batch_defer_async(*({"x": start + k} for k in range(n)))
        dt = time.perf_counter() - t0
    await mod.app.close_async()
    return {"jobs": a.jobs, "seconds": dt, "batch_size": a.batch_size if a.mode == "batch" else 1}


async def cmd_drain(a: argparse.Namespace) -> dict[str, Any]:
    import psycopg

    mod = await _setup(a.dsn)
    noop = mod.noop
    for start in range(0, a.jobs, 1000):
        n = min(1000, a.jobs - start)
        await noop.batch_defer_async(*({"x": start + k} for k in range(n)))
    await mod.app.close_async()
    if a.analyze:
        with psycopg.connect(a.dsn, autocommit=True) as conn:
            conn.execute("ANALYZE")
    logdir = Path(a.logdir)
    wall0 = time.time()
    procs = _start_workers(a.dsn, a.workers, a.concurrency, logdir)
    try:
        deadline = time.monotonic() + a.timeout
        while True:
            done = _count_succeeded(a.dsn)
            if done >= a.jobs:
                break
            _check(procs)
            if time.monotonic() > deadline:
                raise TimeoutError(f"drain: only {done}/{a.jobs} succeeded")
            time.sleep(0.25)
        wall1 = time.time()
    finally:
        _stop_workers(procs)
    with psycopg.connect(a.dsn) as conn:
        row = conn.execute(
            """
            SELECT
              (SELECT extract(epoch FROM min(at)) FROM procrastinate_events WHERE type='started'),
              (SELECT extract(epoch FROM max(at)) FROM procrastinate_events WHERE type='succeeded'),
              (SELECT count(*) FROM procrastinate_events WHERE type='started'),
              (SELECT count(*) FROM procrastinate_jobs WHERE status='succeeded')
            """
        ).fetchone()
    assert row is not None
    first_start, last_end, started_events, succeeded = (
        float(row[0]),
        float(row[1]),
        int(row[2]),
        int(row[3]),
    )
    return {
        "jobs": succeeded,
        "seconds": last_end - first_start,
        "source": "procrastinate_events (started/succeeded timestamps, DB clock)",
        "started_events": started_events,
        "wall_seconds_from_worker_spawn": wall1 - wall0,
    }


async def cmd_latency(a: argparse.Namespace) -> dict[str, Any]:
    mod = await _setup(a.dsn)
    noop = mod.noop
    logdir = Path(a.logdir)
    latdir = Path(tempfile.mkdtemp(prefix="procr_lat_", dir=logdir))
    procs = _start_workers(
        a.dsn, a.workers, a.concurrency, logdir, {"BENCH_LATENCY_DIR": str(latdir)}
    )
    try:
        # warm-up: make sure every worker is up and listening
        warm = [await noop.defer_async(x=-1) for _ in range(a.warmup)]
        deadline = time.monotonic() + 60
        while _count_succeeded(a.dsn) < len(warm):
            _check(procs)
            if time.monotonic() > deadline:
                raise TimeoutError("latency warm-up did not finish")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        enq: dict[int, float] = {}
        for i in range(a.jobs):
            t0 = time.time()
            jid = await noop.defer_async(x=i)
            enq[jid] = t0
            await asyncio.sleep(a.interval)
        deadline = time.monotonic() + 60
        while _count_succeeded(a.dsn) < len(warm) + a.jobs:
            _check(procs)
            if time.monotonic() > deadline:
                raise TimeoutError("latency jobs did not finish")
            await asyncio.sleep(0.05)
    finally:
        _stop_workers(procs)
        await mod.app.close_async()
    starts: dict[int, float] = {}
    for f in latdir.glob("starts-*.txt"):
        for line in f.read_text().splitlines():
            jid_s, ts = line.split()
            starts[int(jid_s)] = float(ts)
    samples = [(starts[j] - t0) * 1000.0 for j, t0 in enq.items() if j in starts]
    return {"samples_ms": samples, "missing": len(enq) - len(samples)}


async def cmd_claim(a: argparse.Namespace) -> dict[str, Any]:
    """Time single fetch_job calls (procrastinate's claim) at several queue depths.

    ``--dsns`` and ``--depths`` pair up (one fresh database per depth); depths are measured
    in interleaved rounds, as enqueued and again after ANALYZE.
    """
    import procrastinate
    import psycopg

    dsns = a.dsns.split(",")
    depths = [int(d) for d in a.depths.split(",")]
    apps: dict[int, Any] = {}
    managers: dict[int, tuple[Any, int]] = {}
    out: dict[str, Any] = {}
    for depth, dsn in zip(depths, dsns, strict=True):
        app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=dsn))

        @app.task(name="noop", queue="default")
        async def noop(**kwargs: Any) -> None:
            return None

        await app.open_async()
        await app.schema_manager.apply_schema_async()
        apps[depth] = app
        t0 = time.perf_counter()
        for start in range(0, depth, 5000):
            n = min(5000, depth - start)
            await noop.batch_defer_async(*({"x": start + k} for k in range(n)))
        fill = time.perf_counter() - t0
        print(f"queued {depth} in {fill:.1f}s", file=sys.stderr, flush=True)
        manager = app.job_manager
        worker_id = await manager.register_worker()
        managers[depth] = (manager, worker_id)
        for _ in range(5):
            await manager.fetch_job(queues=["default"], worker_id=worker_id)
        out[str(depth)] = {"depth": depth, "fill_seconds": fill}
    per_round = max(1, a.samples // a.rounds)
    for phase in ("as_enqueued_ms", "after_analyze_ms"):
        if phase == "after_analyze_ms":
            for dsn in dsns:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("ANALYZE")
        times: dict[int, list[float]] = {d: [] for d in depths}
        for _ in range(a.rounds):
            for depth, (manager, worker_id) in managers.items():
                for _ in range(per_round):
                    c0 = time.perf_counter()
                    job = await manager.fetch_job(queues=["default"], worker_id=worker_id)
                    times[depth].append((time.perf_counter() - c0) * 1000.0)
                    if job is None:
                        raise RuntimeError("fetch_job returned no job")
        for depth, ts in times.items():
            out[str(depth)][phase] = ts
    for app in apps.values():
        await app.close_async()
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["enqueue", "drain", "latency", "claim", "versions"])
    p.add_argument("--dsn", default="")
    p.add_argument("--mode", choices=["single", "batch"], default="single")
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--interval", type=float, default=0.02)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--analyze", action="store_true", help="drain: ANALYZE before workers")
    p.add_argument("--dsns", default="", help="claim: one database per depth")
    p.add_argument("--depths", default="1000,1000000", help="claim: queue depths")
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--logdir", default=tempfile.gettempdir())
    a = p.parse_args()
    if a.command == "versions":
        _emit({k: version(k) for k in ("procrastinate", "psycopg", "psycopg-pool")})
        return
    fn = {
        "enqueue": cmd_enqueue,
        "drain": cmd_drain,
        "latency": cmd_latency,
        "claim": cmd_claim,
    }[a.command]
    _emit(asyncio.run(fn(a)))


if __name__ == "__main__":
    main()
