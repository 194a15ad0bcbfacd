"""Hand-off benchmark (ADRs 0017, 0019): Treadle vs Huey (Redis, SQLite), Dramatiq and Celery.

    .venv/bin/python -m bench.handoff_bench                      # everything -> bench/results/
    .venv/bin/python -m bench.handoff_bench --parts drain --repeats 1 --jobs 2000 --quick

Parts (every system with --workers worker processes, Treadle at --concurrency 8 and its
defaults otherwise, peers at their defaults; PostgreSQL durable, Redis as configured):
  drain     --jobs jobs that each append a line to a file, enqueued first, then the
            workers start; jobs/s from the first to the last job start, read from the file
            (the same for every system). Repeats interleave the systems.
  latency   one job every --interval s to idle workers: enqueue (time taken before the
            call) to the job's code starting, from the file; Celery's from its own record.
            --latency-repeats interleaved rounds, each run after a CHECKPOINT (no run
            pays for the writes of the part or the run before it); medians reported.
  scaleout  Treadle's PostgreSQL drain with 1, 2, 4 and 8 worker processes.
  idle      N idle Treadle workers on PostgreSQL: transactions/s per worker (every
            statement here is its own transaction) and CPU per worker.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import pickup_floor
from bench.common import (
    PG_ADMIN_URL,
    REPO_ROOT,
    RESULTS_DIR,
    ProcGroup,
    dump_json,
    fresh_pg_database,
    latency_summary,
    log,
    machine_info,
    pg_server_version,
    redis_server_version,
    wait_until,
)
from bench.venvs import ensure_venv, run_peer

sys.path.insert(0, str(REPO_ROOT / "bench" / "peers"))
from append_task import count_lines, read_lines

TREADLE = ("treadle-postgres", "treadle-sqlite")
PEERS = ("huey-redis", "huey-sqlite", "dramatiq-redis")
PARTS = ("drain", "latency", "scaleout", "idle")
FLOOR = "floor-postgres"  # the latency part's physical reference (bench/pickup_floor.py)


def _treadle_workers(url: str, n: int, concurrency: int, logdir: Path, tag: str,
                     extra: list[str]) -> ProcGroup:
    env = {**os.environ, "TREADLE_DATABASE_URL": url,
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "src")])}
    group = ProcGroup()
    argv = [str(Path(sys.executable).with_name("treadle")), "worker", "--app",
            "bench.apps.append_app:app", "--db", url, "--queues", "default",
            "--concurrency", str(concurrency), "--log-level", "warning", *extra]
    for i in range(n):
        group.start(argv, env=env, cwd=REPO_ROOT, log_path=logdir / f"{tag}-{i}.log")
    return group


class _TreadleDb:
    """A fresh migrated database for one run, with the append task's app."""

    def __init__(self, backend: str, tmp: Path) -> None:
        self.backend, self.tmp = backend, tmp

    def __enter__(self) -> Any:
        from bench.apps.append_tasks import build_app
        from bench.treadle_side import migrate_for_workers

        if self.backend == "postgres":
            self._pg = fresh_pg_database()
            self.url = self._pg.__enter__()
        else:
            d = Path(tempfile.mkdtemp(dir=self.tmp))
            self.url = f"sqlite:///{d / 'treadle.db'}"
        self.app = build_app(self.url)
        migrate_for_workers(self.app)
        return self

    def __exit__(self, *exc: object) -> None:
        self.app.close()
        if self.backend == "postgres":
            self._pg.__exit__(None, None, None)


def treadle_drain(backend: str, a: argparse.Namespace, tmp: Path, processes: int) -> dict[str, Any]:
    path = str(tmp / f"append-{backend}-{time.monotonic_ns()}.txt")
    with _TreadleDb(backend, tmp) as db:
        task = db.app.tasks["append"]
        t0 = time.perf_counter()
        for start in range(0, a.jobs, 1000):
            task.defer_many([{"path": path, "i": i, "enqueued": 0.0}
                             for i in range(start, min(a.jobs, start + 1000))])
        enqueue_s = time.perf_counter() - t0
        wall0 = time.time()
        group = _treadle_workers(db.url, processes, a.concurrency, tmp, f"drain-{backend}",
                                 a.treadle_args)
        try:
            def done() -> bool:
                group.check_alive()
                return count_lines(path) >= a.jobs

            wait_until(done, timeout=1800, interval=0.05, what="drain")
            wall1 = time.time()
        finally:
            group.stop()
    starts = [s for _, _, s in read_lines(path)]
    os.unlink(path)
    return {"jobs": len(starts), "seconds": max(starts) - min(starts),
            "jobs_per_s": round(len(starts) / (max(starts) - min(starts)), 1),
            "wall_seconds_from_worker_spawn": round(wall1 - wall0, 3),
            "enqueue_seconds_untimed": round(enqueue_s, 3)}


def treadle_latency(backend: str, a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    path = str(tmp / f"latency-{backend}-{time.monotonic_ns()}.txt")  # one file per run
    with _TreadleDb(backend, tmp) as db:
        task = db.app.tasks["append"]
        group = _treadle_workers(db.url, a.workers, a.concurrency, tmp, f"latency-{backend}",
                                 a.treadle_args)
        after: dict[int, float] = {}
        try:
            for _ in range(20):
                task.defer(path=path, i=-1, enqueued=0.0)
            wait_until(lambda: count_lines(path) >= 20, timeout=60, what="warm-up")
            time.sleep(1.0)
            for i in range(a.latency_jobs):
                task.defer(path=path, i=i, enqueued=time.time())
                after[i] = time.time()  # the enqueue's commit is acknowledged
                time.sleep(a.interval)
            wait_until(lambda: count_lines(path) >= 20 + a.latency_jobs, timeout=60,
                       what="latency jobs")
        finally:
            group.stop()
    lines = [(i, e, s) for i, e, s in read_lines(path) if i >= 0]
    return {
        "enqueue_to_start": latency_summary([(s - e) * 1000 for _, e, s in lines]),
        "commit_ack_to_start": latency_summary([(s - after[i]) * 1000 for i, _, s in lines]),
        "interval_s": a.interval,
    }


def _peer(system: str) -> tuple[str, dict[str, str]]:
    peer, _, backend = system.partition("-")
    env = {"BENCH_HUEY_BACKEND": backend} if peer == "huey" else {}
    return peer, env


def peer_drain(system: str, a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    peer, env = _peer(system)
    if system == "huey-sqlite":
        env["BENCH_HUEY_SQLITE"] = str(Path(tempfile.mkdtemp(dir=tmp)) / "huey.db")
    os.environ.update(env)
    try:
        r = run_peer(peer, "drain", "--jobs", str(a.jobs), "--workers", str(a.workers),
                     "--path", str(tmp / f"append-{system}.txt"), "--logdir", str(tmp))
    finally:
        for k in env:
            os.environ.pop(k, None)
    r["jobs_per_s"] = round(r["jobs"] / r["seconds"], 1)
    return r


def peer_latency(system: str, a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    if system == "celery":
        r = run_peer("celery", "latency", "--jobs", str(a.latency_jobs), "--interval",
                     str(a.interval), "--workers", str(a.workers), "--logdir", str(tmp))
        return {"enqueue_to_start": latency_summary(r["samples_ms"]), "interval_s": a.interval}
    peer, env = _peer(system)
    if system == "huey-sqlite":
        env["BENCH_HUEY_SQLITE"] = str(Path(tempfile.mkdtemp(dir=tmp)) / "huey.db")
    os.environ.update(env)
    try:
        r = run_peer(peer, "latency", "--jobs", str(a.latency_jobs), "--interval",
                     str(a.interval), "--workers", str(a.workers),
                     "--path", str(tmp / f"latency-{system}-{time.monotonic_ns()}.txt"),
                     "--logdir", str(tmp))
    finally:
        for k in env:
            os.environ.pop(k, None)
    return {"enqueue_to_start": latency_summary(r["samples_ms"]), "interval_s": a.interval}


def idle_cost(a: argparse.Namespace, tmp: Path, n: int) -> dict[str, Any]:
    """Transactions/s and CPU of ``n`` idle workers over ``a.idle_seconds``."""
    import psycopg

    with _TreadleDb("postgres", tmp) as db:
        dbname = db.url.rsplit("/", 1)[1]
        # The migration's connection: closed now, so the statistics of its transactions
        # are flushed before the window (a backend left open flushes them seconds later,
        # and they were counted as the workers' own: ~1 transaction/s more per worker).
        db.app.close()
        group = _treadle_workers(db.url, n, a.concurrency, tmp, "idle", a.treadle_args)
        try:
            time.sleep(5.0)  # start-up done
            group.check_alive()
            with psycopg.connect(db.url, autocommit=True) as conn:
                def xacts() -> int:
                    conn.execute("SELECT pg_stat_clear_snapshot()")
                    row = conn.execute(
                        "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                        "WHERE datname = %s", (dbname,)).fetchone()
                    assert row is not None
                    return int(row[0])

                cpu0, x0, t0 = _cpu(group), xacts(), time.monotonic()
                time.sleep(a.idle_seconds)
                cpu1, x1, t1 = _cpu(group), xacts(), time.monotonic()
        finally:
            group.stop()
    secs = t1 - t0
    own = 3  # this probe's own transactions in the window (snapshot clear, read)
    return {"workers": n, "seconds": round(secs, 1),
            "transactions_per_s_per_worker": round((x1 - x0 - own) / secs / n, 3),
            "cpu_percent_per_worker": round(100 * (cpu1 - cpu0) / secs / n, 3),
            "note": "pg_stat_database counters are flushed by backends at most every "
                    "~0.5-1 s; over the window that evens out"}


def _cpu(group: ProcGroup) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in group.procs:
        fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / tick


def _checkpoint() -> None:
    """Flush PostgreSQL's dirty buffers now, so the next latency run does not share the
    disk with the checkpoint a drain's writes would start."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def _latency_median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure the median over the rounds; the runs kept as they were."""
    out: dict[str, Any] = {"runs": runs}
    for key in ("enqueue_to_start", "commit_ack_to_start"):
        if all(key in r for r in runs):
            out[key] = {f: round(statistics.median(r[key][f] for r in runs), 3)
                        for f in ("p50_ms", "p95_ms", "p99_ms")}
    return out


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    vals = [r["jobs_per_s"] for r in runs]
    return {"median_jobs_per_s": round(statistics.median(vals), 1), "runs": runs}


def render(doc: dict[str, Any]) -> str:
    """``handoff.md``: medians, the ratios the issue asks for, and the machine's load."""
    res, cfg = doc["results"], doc["config"]
    extra = (", " + " ".join(cfg["treadle_args"])) if cfg["treadle_args"] else ""
    out = [f"# Hand-off benchmark (issue 13) — {doc['date']}", "",
           f"Machine: {doc['machine'].get('nproc')} cores, {doc['machine'].get('cpu', '?')}; "
           "shared with other sessions' test runs and benchmarks, so figures are noisy.",
           f"`uptime` at start: `{doc['uptime_at_start']}`", "",
           f"`uptime` at end: `{doc.get('uptime_now', '?')}`", "",
           f"PostgreSQL {doc['versions']['postgresql']}; Redis {doc['versions']['redis']}.",
           f"Config: {cfg['jobs']} jobs, {cfg['workers']} worker processes per system, "
           f"Treadle `--concurrency {cfg['concurrency']}` (defaults otherwise{extra}), "
           f"{cfg['repeats']} interleaved repeats. Raw: `{doc.get('json_name', '')}`.", ""]
    if "drain" in res:
        d = res["drain"]
        out += ["## Drain (jobs/s, first to last job start, read from the appended file)", "",
                "| system | median | runs (load 1 min before each) |", "| --- | --- | --- |"]
        for s, v in d.items():
            runs = ", ".join(f"{r['jobs_per_s']} ({r['loadavg_1m_before']})" for r in v["runs"])
            out.append(f"| {s} | {v['median_jobs_per_s']} | {runs} |")
        out.append("")
        for a, b in (("treadle-postgres", "huey-redis"), ("treadle-sqlite", "huey-sqlite"),
                     ("treadle-postgres", "dramatiq-redis")):
            if a in d and b in d:
                ratio = d[a]["median_jobs_per_s"] / d[b]["median_jobs_per_s"]
                goal = "" if b.startswith("dramatiq") else " (target 1.5x)"
                out.append(f"- {a} / {b}: **{ratio:.2f}x**{goal}")
        out.append("")
    if "latency" in res:
        n = cfg.get("latency_repeats", 1)
        out += ["## Pickup latency (ms; idle workers, one job every "
                f"{doc['config']['interval']} s)", "",
                f"Each figure the median over {n} interleaved rounds, each run after a "
                "`CHECKPOINT`; the rounds' p50s (load 1 min before) in the last column.", "",
                "| system | enqueue→start p50 | p95 | p99 | commit ack→start p50 | p99 "
                "| rounds' p50 |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        for s, v in res["latency"].items():
            e, c = v["enqueue_to_start"], v.get("commit_ack_to_start")
            tail = f"{c['p50_ms']} | {c['p99_ms']}" if c else "— | —"
            rounds = ", ".join(f"{r['enqueue_to_start']['p50_ms']} ({r.get('loadavg_1m_before')})"
                               for r in v.get("runs", []))
            out.append(f"| {s} | {e['p50_ms']} | {e['p95_ms']} | {e['p99_ms']} | {tail} "
                       f"| {rounds} |")
        if FLOOR in res["latency"]:
            out += ["", f"`{FLOOR}` is no queue: the physical reference of a durable hand-over "
                    "through PostgreSQL on this machine (`bench/pickup_floor.py`: one row "
                    "inserted and notified in one statement, synchronous commit, to a "
                    "listening process that hands it to a thread)."]
        out.append("")
    if "scaleout" in res:
        out += ["## Scale-out: Treadle drain on PostgreSQL by worker processes", "",
                "| processes | jobs/s |", "| --- | --- |"]
        out += [f"| {n} | {v['jobs_per_s']} |" for n, v in res["scaleout"].items()]
        out.append("")
    if "idle" in res:
        out += ["## Idle cost per worker (PostgreSQL, no work)", "",
                "| workers | transactions/s per worker | CPU % per worker |", "| --- | --- | --- |"]
        out += [f"| {n} | {v['transactions_per_s_per_worker']} | {v['cpu_percent_per_worker']} |"
                for n, v in res["idle"].items()]
        out.append("")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.handoff_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--systems", default=",".join(TREADLE + PEERS))
    p.add_argument("--jobs", type=int, default=20_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--latency-jobs", type=int, default=300)
    p.add_argument("--latency-repeats", type=int, default=3)
    p.add_argument("--interval", type=float, default=0.02)
    p.add_argument("--scaleout", default="1,2,4,8")
    p.add_argument("--idle-workers", default="1,4")
    p.add_argument("--idle-seconds", type=float, default=30.0)
    p.add_argument("--treadle-arg", dest="treadle_args", action="append", default=[],
                   help="extra `treadle worker` argument (repeatable)")
    p.add_argument("--tag", default="")
    p.add_argument("--quick", action="store_true", help="write to a temp dir")
    a = p.parse_args(argv)
    parts = [x for x in a.parts.split(",") if x]
    systems = [x for x in a.systems.split(",") if x]
    out_dir = Path(tempfile.mkdtemp(prefix="handoff-")) if a.quick else RESULTS_DIR
    started = dt.datetime.now(dt.UTC)
    doc: dict[str, Any] = {
        "date": started.isoformat(timespec="seconds"), "machine": machine_info(),
        "uptime_at_start": os.popen("uptime").read().strip(),
        "versions": {"postgresql": pg_server_version(), "redis": redis_server_version()},
        "config": {k: v for k, v in vars(a).items()}, "results": {},
    }
    for peer in {_peer(s)[0] for s in systems if not s.startswith("treadle")} | (
            {"celery"} if "latency" in parts else set()):
        ensure_venv(peer)
        doc["versions"][peer] = run_peer(peer, "versions")
    res: dict[str, Any] = doc["results"]
    name = f"handoff{'-' + a.tag if a.tag else ''}"
    json_path = out_dir / f"{name}.json"

    def save() -> None:
        doc["uptime_now"] = os.popen("uptime").read().strip()
        doc["json_name"] = json_path.name
        json_path.write_text(dump_json(doc) + "\n")
        (out_dir / f"{name}.md").write_text(render(doc))

    with tempfile.TemporaryDirectory(prefix="handoff-bench-") as tmp_s:
        tmp = Path(tmp_s)
        runs: dict[str, Callable[[], dict[str, Any]]] = {}
        for s in systems:
            if s.startswith("treadle"):
                backend = s.split("-", 1)[1]
                runs[s] = lambda b=backend: treadle_drain(b, a, tmp, a.workers)  # type: ignore[misc]
            else:
                runs[s] = lambda s=s: peer_drain(s, a, tmp)  # type: ignore[misc]
        if "drain" in parts:
            got: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
            for r in range(a.repeats):
                for s in systems:
                    load = os.getloadavg()[0]
                    log(f"drain {s} ({r + 1}/{a.repeats}) ...")
                    v = runs[s]()
                    v["loadavg_1m_before"] = round(load, 2)
                    log(f"drain {s}: {v['jobs_per_s']} jobs/s")
                    got[s].append(v)
            res["drain"] = {s: _median(v) for s, v in got.items()}
            save()
        if "latency" in parts:
            lat: dict[str, list[dict[str, Any]]] = {s: [] for s in [*systems, "celery", FLOOR]}
            for r in range(a.latency_repeats):
                for s in lat:
                    log(f"latency {s} ({r + 1}/{a.latency_repeats}) ...")
                    _checkpoint()
                    load = os.getloadavg()[0]
                    if s == FLOOR:
                        v = pickup_floor.run(a.latency_jobs, a.interval, tmp)
                    else:
                        v = (treadle_latency(s.split("-", 1)[1], a, tmp)
                             if s.startswith("treadle") else peer_latency(s, a, tmp))
                    v["loadavg_1m_before"] = round(load, 2)
                    lat[s].append(v)
                    log(f"latency {s}: {v['enqueue_to_start']['p50_ms']} ms p50")
                res["latency"] = {s: _latency_median(v) for s, v in lat.items() if v}
                save()
        if "scaleout" in parts:
            res["scaleout"] = {}
            for n in [int(x) for x in a.scaleout.split(",")]:
                log(f"scaleout {n} processes ...")
                res["scaleout"][str(n)] = treadle_drain("postgres", a, tmp, n)
                log(f"scaleout {n}: {res['scaleout'][str(n)]['jobs_per_s']} jobs/s")
                save()
        if "idle" in parts:
            res["idle"] = {}
            for n in [int(x) for x in a.idle_workers.split(",")]:
                log(f"idle {n} workers ...")
                res["idle"][str(n)] = idle_cost(a, tmp, n)
                log(f"idle {n}: {res['idle'][str(n)]}")
                save()
    save()
    log(f"wrote {json_path}")
    print(dump_json(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
