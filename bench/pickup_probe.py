"""Pickup probe (issue 13, ADR 0031): where an idle worker's pickup time goes.

    .venv/bin/python -m bench.pickup_probe --backend postgres --jobs 300
    .venv/bin/python -m bench.pickup_probe --backend sqlite --jobs 300

As ``handoff_bench``'s latency part (one ``defer`` every --interval s to --workers idle
worker processes at --concurrency 8), but the workers load ``bench.apps.pickup_probe_app``,
which timestamps each step inside the worker: the producer's commit acknowledged (ack) →
the worker's wait for work returns (wake) → its claim starts → the claim returns (claim) →
the job is handed to an executor thread (hand) → the task's code starts (exec). Printed:
p50/p99 of each step and of ack→start, enqueue→start. Wall clock on a shared machine:
compare runs made back to back, and read the steps, not one total.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, ProcGroup, fresh_pg_database, percentile, wait_until

STEPS = ("ack>wake", "wake>claim0", "claim", "claim1>hand", "hand>exec",
         "ack>exec", "enq>ack", "enq>exec")


def _rows(path: str) -> list[list[float]]:
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 7:
                out.append([float(p) for p in parts])
    return out


def _switches(pids: list[int]) -> tuple[int, float]:
    """Voluntary context switches (a thread went to sleep, so a wake-up followed) and CPU
    seconds, summed over every thread of ``pids``: load-independent costs of a pickup."""
    n, cpu = 0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches"):
                            n += int(line.split()[1])
                with open(f"/proc/{pid}/task/{task}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                    cpu += (int(fields[11]) + int(fields[12])) / tick
        except (FileNotFoundError, ProcessLookupError):
            continue
    return n, cpu


def _backends(url: str) -> list[int]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = "
                            "current_database() AND pid <> pg_backend_pid()").fetchall()
    return [r[0] for r in rows]


def run(backend: str, a: argparse.Namespace, tmp: Path) -> dict[str, dict[str, Any]]:
    from bench.apps.append_tasks import build_app
    from bench.treadle_side import migrate_for_workers

    path = str(tmp / f"probe-{backend}-{time.monotonic_ns()}.txt")
    pg = None
    if backend == "postgres":
        pg = fresh_pg_database()
        url = pg.__enter__()
    else:
        url = f"sqlite:///{tmp / f'probe-{time.monotonic_ns()}.db'}"
    app = build_app(url)  # the producer: the plain app (same task name and queue)
    migrate_for_workers(app)
    src = a.src or str(REPO_ROOT / "src")
    env = {**os.environ, "TREADLE_DATABASE_URL": url,
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), src])}
    argv = [str(Path(sys.executable).with_name("treadle")), "worker", "--app",
            "bench.apps.pickup_probe_app:app", "--db", url, "--queues", "default",
            "--concurrency", str(a.concurrency), "--log-level", "warning", *a.treadle_args]
    group = ProcGroup()
    acks: dict[int, float] = {}
    try:
        for i in range(a.workers):
            group.start(argv, env=env, cwd=REPO_ROOT, log_path=tmp / f"probe-{backend}-{i}.log")
        task = app.tasks["append"]
        for _ in range(20):
            task.defer(path=path, i=-1, enqueued=0.0)
        wait_until(lambda: len(_rows(path)) >= 20 if os.path.exists(path) else False,
                   timeout=60, what="warm-up")
        time.sleep(1.0)
        workers = [p.pid for p in group.procs]
        backends = _backends(url) if backend == "postgres" else []
        w0, b0 = _switches(workers), _switches(backends)
        for i in range(a.jobs):
            task.defer(path=path, i=i, enqueued=time.time())
            acks[i] = time.time()
            time.sleep(a.interval)
        wait_until(lambda: len(_rows(path)) >= 20 + a.jobs, timeout=60, what="jobs")
        w1, b1 = _switches(workers), _switches(backends)
    finally:
        group.stop()
        app.close()
        if pg is not None:
            pg.__exit__(None, None, None)
    steps: dict[str, list[float]] = {s: [] for s in STEPS}
    for i, enq, woke, c0, c1, hand, start in _rows(path):
        if i < 0:
            continue
        ack = acks[int(i)]
        for name, (x, y) in zip(STEPS, ((ack, woke), (woke, c0), (c0, c1), (c1, hand),
                                        (hand, start), (ack, start), (enq, ack),
                                        (enq, start)), strict=True):
            steps[name].append((y - x) * 1000)
    out = {s: {"p50": round(percentile(v, 50), 3), "p99": round(percentile(v, 99), 3)}
           for s, v in steps.items()}
    # Per job, over the jobs' window: all worker processes, all this database's backends
    # but the producer's (its own process is not counted).
    out["per job"] = {"worker wakes": round((w1[0] - w0[0]) / a.jobs, 1),
                      "worker cpu ms": round((w1[1] - w0[1]) * 1000 / a.jobs, 3),
                      "backend wakes": round((b1[0] - b0[0]) / a.jobs, 1),
                      "backend cpu ms": round((b1[1] - b0[1]) * 1000 / a.jobs, 3)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pickup_probe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("postgres", "sqlite"), action="append")
    p.add_argument("--jobs", type=int, default=300)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--interval", type=float, default=0.02)
    p.add_argument("--treadle-arg", dest="treadle_args", action="append", default=[])
    p.add_argument("--against", metavar="SRC",
                   help="another checkout's src/ for the workers: runs alternate (this one, "
                        "that one) --repeats times, to compare under the same load")
    p.add_argument("--repeats", type=int, default=1)
    a = p.parse_args(argv)
    sources = [None, a.against] if a.against else [None]
    with tempfile.TemporaryDirectory() as d:
        for backend in a.backend or ["postgres", "sqlite"]:
            for r in range(a.repeats):
                for src in sources:
                    a.src = src
                    load = os.getloadavg()[0]
                    res: dict[str, Any] = run(backend, a, Path(d))
                    print(f"{backend} [{src or 'this checkout'}] run {r + 1} (load "
                          f"{load:.2f} before, {os.getloadavg()[0]:.2f} after), ms:")
                    for s, v in res.items():
                        if s == "per job":
                            print("  per job: " + ", ".join(f"{k} {x}" for k, x in v.items()))
                        else:
                            print(f"  {s:12s} p50 {v['p50']:7.3f}  p99 {v['p99']:7.3f}")
                    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
