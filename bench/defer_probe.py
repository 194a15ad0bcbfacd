"""Where a lone ``defer`` after idleness goes (ADR 0032): timestamps around each step.

    .venv/bin/python -m bench.defer_probe [--backend postgres|sqlite] [--calls 300]
        [--idle 0.02] [--workers 2]

One producer defers a job every ``--idle`` seconds (the pickup benchmark's cadence) to
``--workers`` idle worker processes (0: none), on a fresh database. The steps of each
call are timed by wrapping the functions that take them (instrumentation only: the
wrappers add ~1 µs per step); the report gives each gap's median, the call's median
and p90, and the producer thread's CPU per call. Nothing is written.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, nearest_rank, scratch_database

Mark = tuple[str, float]


def _instrument(app: Any, task: Any, marks: list[Mark]) -> None:
    """Wrap the steps of the enqueue path so each records when it starts and ends."""

    def wrap(owner: Any, attr: str, name: str) -> None:
        inner: Callable[..., Any] = getattr(owner, attr)

        def timed(*args: Any, **kwargs: Any) -> Any:
            marks.append((f"{name}>", time.perf_counter()))
            try:
                return inner(*args, **kwargs)
            finally:
                marks.append((f"{name}<", time.perf_counter()))

        setattr(owner, attr, timed)

    store = app.store
    wrap(task, "new_job", "new_job")
    wrap(store._committer, "_commit", "commit")
    wrap(store.clock, "now", "clock")
    if type(store).__name__ == "PostgresStore":
        import treadle.store.postgres.producing as pg  # the producer's path lives here
        import treadle.store.postgres.retry as retry

        wrap(store._pool, "getconn", "getconn")
        wrap(store._pool, "putconn", "putconn")
        wrap(retry, "check_idle", "check_idle")
        wrap(pg, "job_document", "job_document")
        wrap(pg, "insert_plain", "insert")
        wrap(pg, "match_inserted", "match")
    else:  # SQLite: the rows' statements; the commit (its fsync) follows them
        wrap(store, "_enqueue_in", "insert")


def _workers(url: str, n: int, logdir: Path) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "TREADLE_DATABASE_URL": url,
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "src")])}
    argv = [str(Path(sys.executable).with_name("treadle")), "worker", "--app",
            "bench.apps.append_app:app", "--db", url, "--queues", "default",
            "--concurrency", "8", "--log-level", "error"]
    out = []
    for i in range(n):
        with open(logdir / f"defer-probe-worker-{i}.log", "wb") as log:
            out.append(subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=log,
                                        stderr=subprocess.STDOUT))
    return out


def probe(url: str, calls: int, idle: float, workers: int, logdir: Path) -> str:
    from bench.apps.append_tasks import build_app

    load = os.getloadavg()[0]
    app = build_app(url)
    app.migrate()
    task = app.get_task("append")
    path = str(logdir / "defer-probe-lines.txt")
    procs = _workers(url, workers, logdir)
    try:
        for _ in range(20):  # warm up: connections, prepared statements, the workers
            task.defer(path=path, i=-1, enqueued=0.0)
        time.sleep(2.0 if workers else 0.1)
        marks: list[Mark] = []
        _instrument(app, task, marks)
        totals: list[float] = []
        cpu: list[float] = []
        gaps: dict[str, list[float]] = {}
        for i in range(calls):
            time.sleep(idle)
            marks.clear()
            c0, t0 = time.thread_time(), time.perf_counter()
            task.defer(path=path, i=i, enqueued=0.0)
            t1 = time.perf_counter()
            cpu.append((time.thread_time() - c0) * 1e6)
            totals.append((t1 - t0) * 1000)
            prev: Mark = ("call", t0)
            for name, at in [*marks, ("return", t1)]:
                gaps.setdefault(f"{prev[0]} → {name}", []).append((at - prev[1]) * 1000)
                prev = (name, at)
    finally:
        app.close()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
    lines = [f"{calls} calls, one every {idle * 1000:g} ms, {workers} idle workers; "
             f"load average before {load:.2f}",
             f"call p50 {statistics.median(totals):.3f} ms, p90 "
             f"{nearest_rank(totals, 90):.3f} ms; producer thread CPU p50 "
             f"{statistics.median(cpu):.0f} µs", "",
             "| step | p50 ms | mean ms |", "| --- | ---: | ---: |"]
    for gap, samples in gaps.items():
        if len(samples) >= calls * 0.9:  # steps every call takes
            lines.append(f"| {gap} | {statistics.median(samples):.3f} | "
                         f"{statistics.mean(samples):.3f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="postgres", choices=("postgres", "sqlite"))
    ap.add_argument("--calls", type=int, default=300)
    ap.add_argument("--idle", type=float, default=0.02)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with scratch_database(args.backend, "treadle_defer_probe") as url:
        logdir = Path(os.environ.get("TMPDIR", "/tmp"))
        print(probe(url, args.calls, args.idle, args.workers, logdir))


if __name__ == "__main__":
    main()
