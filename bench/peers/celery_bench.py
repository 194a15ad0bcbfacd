"""Celery side of the benchmark. Run with the celery venv's python.

Prints one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import celery_app  # noqa: E402
import redis  # noqa: E402
from celery import group  # noqa: E402

RESULT_PREFIX = "celery-task-meta-"


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def _redis(db: int) -> redis.Redis:
    return redis.Redis(
        host=os.environ.get("BENCH_REDIS_HOST", "127.0.0.1"),
        port=int(os.environ.get("BENCH_REDIS_PORT", "6379")),
        db=db,
    )


def _flush() -> None:
    _redis(celery_app.BROKER_DB).flushdb()
    _redis(celery_app.BACKEND_DB).flushdb()


def _results_count() -> int:
    return int(_redis(celery_app.BACKEND_DB).dbsize())


def _start_worker(concurrency: int, logdir: Path) -> subprocess.Popen[bytes]:
    log = open(logdir / "celery-worker.log", "wb")  # noqa: SIM115
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "celery_app",
        "worker",
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--queues",
        "default",
        "--loglevel",
        "WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(HERE)
    return subprocess.Popen(
        argv, env=env, cwd=HERE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _stop_worker(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def _wait_results(n: int, p: subprocess.Popen[bytes], timeout: float, interval: float) -> None:
    deadline = time.monotonic() + timeout
    while _results_count() < n:
        if p.poll() is not None:
            raise RuntimeError(f"celery worker exited early with {p.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {_results_count()}/{n} results")
        time.sleep(interval)


def _read_results(ids: list[str] | None = None) -> list[dict[str, Any]]:
    r = _redis(celery_app.BACKEND_DB)
    keys = (
        [RESULT_PREFIX + i for i in ids]
        if ids is not None
        else list(r.scan_iter(match=RESULT_PREFIX + "*", count=5000))
    )
    out: list[dict[str, Any]] = []
    for k in range(0, len(keys), 2000):
        for raw in r.mget(keys[k : k + 2000]):
            if raw is not None:
                out.append(json.loads(raw))
    return out


def _enqueue_batch(n: int, offset: int = 0) -> None:
    group(celery_app.noop.s(x=offset + k) for k in range(n)).apply_async()


def cmd_enqueue(a: argparse.Namespace) -> dict[str, Any]:
    _flush()
    celery_app.noop.apply_async(kwargs={"x": -1})  # connect / warm up
    if a.mode == "single":
        t0 = time.perf_counter()
        for i in range(a.jobs):
            celery_app.noop.apply_async(kwargs={"x": i})
        dt = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        for start in range(0, a.jobs, a.batch_size):
            _enqueue_batch(min(a.batch_size, a.jobs - start), start)
        dt = time.perf_counter() - t0
    _flush()
    return {"jobs": a.jobs, "seconds": dt, "batch_size": a.batch_size if a.mode == "batch" else 1}


def cmd_drain(a: argparse.Namespace) -> dict[str, Any]:
    _flush()
    for start in range(0, a.jobs, 1000):
        _enqueue_batch(min(1000, a.jobs - start), start)
    wall0 = time.time()
    p = _start_worker(a.workers, Path(a.logdir))
    try:
        _wait_results(a.jobs, p, a.timeout, 0.25)
        wall1 = time.time()
    finally:
        _stop_worker(p)
    metas = _read_results()
    _flush()
    ok = [m for m in metas if m.get("status") == "SUCCESS"]
    first_start = min(float(m["result"]) for m in ok)
    last_end = max(datetime.fromisoformat(m["date_done"]).timestamp() for m in ok)
    return {
        "jobs": len(ok),
        "seconds": last_end - first_start,
        "source": "redis result backend (start = task's time.time(), end = date_done)",
        "wall_seconds_from_worker_spawn": wall1 - wall0,
    }


def cmd_latency(a: argparse.Namespace) -> dict[str, Any]:
    _flush()
    p = _start_worker(a.workers, Path(a.logdir))
    try:
        warm = [celery_app.noop.apply_async(kwargs={"x": -1}) for _ in range(a.warmup)]
        for w in warm:
            w.get(timeout=60)
        time.sleep(1.0)
        sent: list[tuple[str, float]] = []
        for i in range(a.jobs):
            t0 = time.time()
            res = celery_app.noop.apply_async(kwargs={"x": i})
            sent.append((res.id, t0))
            time.sleep(a.interval)
        _wait_results(a.warmup + a.jobs, p, 60, 0.05)
    finally:
        _stop_worker(p)
    metas = {m["task_id"]: m for m in _read_results([tid for tid, _ in sent])}
    _flush()
    samples = [(float(metas[tid]["result"]) - t0) * 1000.0 for tid, t0 in sent if tid in metas]
    return {"samples_ms": samples, "missing": len(sent) - len(samples)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["enqueue", "drain", "latency", "versions"])
    p.add_argument("--mode", choices=["single", "batch"], default="single")
    p.add_argument("--jobs", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--interval", type=float, default=0.02)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--logdir", default=tempfile.gettempdir())
    a = p.parse_args()
    if a.command == "versions":
        _emit({k: version(k) for k in ("celery", "kombu", "redis", "billiard")})
        return
    fn = {"enqueue": cmd_enqueue, "drain": cmd_drain, "latency": cmd_latency}[a.command]
    _emit(fn(a))


if __name__ == "__main__":
    main()
