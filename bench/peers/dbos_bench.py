"""DBOS Transact side of the workflow benchmark. Run with the dbos venv's python.

``run`` starts ``--procs`` worker processes (``worker`` below) against one system database;
each launches DBOS, waits for a common start signal, then calls the ``bench_wf`` workflow
directly (DBOS's in-process path: no queue) from ``--threads`` threads until the process's
share of ``--workflows`` is done. ``bench_wf(n)`` runs ``n`` no-op ``@DBOS.step`` calls.

Per workflow DBOS writes its ``workflow_status`` row (start, then completion); per step it
runs one transaction reading the workflow's status and any recorded output of that step
(``check_operation_execution``) and one transaction inserting the step's output row into
``operation_outputs`` (``record_operation_result``), committed before the workflow goes on.

Prints one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WF_NAME = "bench_wf"
WARM_NAME = "bench_warm"


def _emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def _config(url: str, executor_id: str, threads: int) -> dict[str, Any]:
    return {
        "name": "treadle-wfbench",
        "system_database_url": url,
        "executor_id": executor_id,
        "application_version": "wfbench",  # same version in every process
        "log_level": "WARNING",
        "max_executor_threads": max(8, threads + 4),
        "sys_db_pool_size": max(5, threads + 4),
    }


def _define(dbos_cls: Any) -> tuple[Any, Any]:
    @dbos_cls.step(name="noop_step")
    def noop_step(i: int) -> int:
        return i

    @dbos_cls.workflow(name=WF_NAME)
    def bench_wf(n: int) -> int:
        for i in range(n):
            noop_step(i)
        return n

    @dbos_cls.workflow(name=WARM_NAME)
    def bench_warm(n: int) -> int:
        for i in range(n):
            noop_step(i)
        return n

    return bench_wf, bench_warm


def cmd_setup(a: argparse.Namespace) -> dict[str, Any]:
    """Create / migrate the system database once (not timed); set SQLite's journal mode."""
    if a.db.startswith("sqlite") and a.sqlite_journal == "wal":
        path = a.db.split("sqlite:///", 1)[1]
        with sqlite3.connect(path) as conn:  # journal_mode=WAL is stored in the file
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        assert mode == "wal", mode
    from dbos import DBOS

    _define(DBOS)
    DBOS(config=_config(a.db, "setup", 1))  # type: ignore[arg-type]
    DBOS.launch()
    DBOS.destroy()
    out: dict[str, Any] = {"dbos_version": version("dbos")}
    if a.db.startswith("sqlite"):
        path = a.db.split("sqlite:///", 1)[1]
        with sqlite3.connect(path) as conn:
            out["sqlite_journal_mode"] = conn.execute("PRAGMA journal_mode").fetchone()[0]
            out["sqlite_synchronous"] = conn.execute("PRAGMA synchronous").fetchone()[0]
    return out


def cmd_worker(a: argparse.Namespace) -> dict[str, Any]:
    from dbos import DBOS

    bench_wf, bench_warm = _define(DBOS)
    DBOS(config=_config(a.db, f"wfbench-{a.index}", a.threads))  # type: ignore[arg-type]
    DBOS.launch()
    try:
        for _ in range(a.warmup):  # warm connections and code paths; excluded by name
            bench_warm(a.steps)
        print("ready", flush=True)
        go = Path(a.go_file)
        while not go.exists():
            time.sleep(0.005)
        counter = iter(range(a.workflows))
        lock = threading.Lock()
        durations: list[float] = []
        errors: list[str] = []

        def body() -> None:
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                t0 = time.perf_counter()
                try:
                    got = bench_wf(a.steps)
                except Exception as exc:  # recorded, never hidden
                    errors.append(repr(exc))
                    continue
                dt = time.perf_counter() - t0
                if got != a.steps:
                    errors.append(f"workflow returned {got!r}")
                with lock:
                    durations.append(dt * 1000.0)

        start = time.time()
        cpu0 = time.process_time()  # every thread of this process, DBOS's own included
        threads = [threading.Thread(target=body) for _ in range(a.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        end = time.time()
        cpu = time.process_time() - cpu0
    finally:
        DBOS.destroy()
    return {
        "durations_ms": durations,
        "start": start,
        "end": end,
        "cpu_seconds": cpu,
        "errors": errors[:5],
    }


def _db_window(url: str) -> dict[str, Any]:
    """Count, first start and last completion of the benchmark workflows, from DBOS's rows."""
    sql = (
        "SELECT count(*), min(created_at), max(updated_at), "
        "sum(CASE WHEN status = 'SUCCESS' THEN 1 ELSE 0 END) "
        f"FROM {{t}} WHERE name = '{WF_NAME}'"
    )
    if url.startswith("sqlite"):
        with sqlite3.connect(url.split("sqlite:///", 1)[1]) as conn:
            row = conn.execute(sql.format(t="workflow_status")).fetchone()
            steps = conn.execute("SELECT count(*) FROM operation_outputs").fetchone()[0]
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute(sql.format(t="dbos.workflow_status")).fetchone()
            steps_row = conn.execute("SELECT count(*) FROM dbos.operation_outputs").fetchone()
            steps = steps_row[0] if steps_row else 0
    assert row is not None
    n, first, last, ok = row
    return {
        "rows": int(n),
        "succeeded": int(ok or 0),
        "step_rows_total": int(steps),
        "first_created_ms": first,
        "last_updated_ms": last,
    }


def cmd_run(a: argparse.Namespace) -> dict[str, Any]:
    setup = cmd_setup(a)
    shares = [a.workflows // a.procs + (1 if i < a.workflows % a.procs else 0)
              for i in range(a.procs)]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="dbos-wfbench-") as tmp:
        go = Path(tmp) / "go"
        procs = []
        for i, share in enumerate(shares):
            argv = [sys.executable, str(Path(__file__).resolve()), "worker", "--db", a.db,
                    "--index", str(i), "--steps", str(a.steps), "--workflows", str(share),
                    "--threads", str(a.threads), "--warmup", str(a.warmup),
                    "--go-file", str(go)]  # fmt: skip
            procs.append(
                subprocess.Popen(
                    argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE
                )
            )
        for p in procs:  # wait for every process to be launched and warmed up
            assert p.stdout is not None
            line = p.stdout.readline()
            if line.strip() != "ready":
                _, err = p.communicate(timeout=60)
                raise RuntimeError(f"dbos worker failed to start: {line!r}\n{err[-3000:]}")
        go.touch()
        results = []
        for p in procs:
            out, err = p.communicate(timeout=a.timeout)
            if p.returncode != 0:
                raise RuntimeError(f"dbos worker exited {p.returncode}:\n{err[-3000:]}")
            results.append(json.loads([ln for ln in out.splitlines() if ln.strip()][-1]))
    durations = [d for r in results for d in r["durations_ms"]]
    errors = [e for r in results for e in r["errors"]]
    window = _db_window(a.db)
    if errors or window["succeeded"] != a.workflows:
        raise RuntimeError(f"DBOS run incomplete: {window}, errors {errors[:5]}")
    client_s = max(r["end"] for r in results) - min(r["start"] for r in results)
    db_s = (window["last_updated_ms"] - window["first_created_ms"]) / 1000.0  # 1 s resolution
    durations.sort()
    return {
        **setup,
        "workflows": a.workflows,
        "steps": a.steps,
        "procs": a.procs,
        "threads": a.threads,
        "seconds": round(client_s, 4),
        "cpu_seconds": round(sum(r["cpu_seconds"] for r in results), 4),
        "workflows_per_s": round(a.workflows / client_s, 2),
        "db_seconds": round(db_s, 4),
        "duration_median_ms": round(statistics.median(durations), 4),
        "duration_mean_ms": round(statistics.fmean(durations), 4),
        "duration_p95_ms": round(durations[int(0.95 * (len(durations) - 1))], 4),
        "db": window,
        "source": "window: common start signal to the last workflow's return, over all "
        "processes (DBOS's own created_at/updated_at have 1 s resolution on SQLite); "
        "durations: perf_counter around each direct workflow call",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("setup", "run", "worker"):
        p = sub.add_parser(name)
        p.add_argument("--db", required=True)
        p.add_argument("--sqlite-journal", choices=["wal", "default"], default="wal")
        p.add_argument("--steps", type=int, default=10)
        p.add_argument("--workflows", type=int, default=200)
        p.add_argument("--procs", type=int, default=4)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--warmup", type=int, default=3)
        p.add_argument("--timeout", type=float, default=900)
        p.add_argument("--index", type=int, default=0)
        p.add_argument("--go-file", default="")
    a = ap.parse_args()
    handler = {"setup": cmd_setup, "run": cmd_run, "worker": cmd_worker}[a.cmd]
    _emit(handler(a))


if __name__ == "__main__":
    main()
