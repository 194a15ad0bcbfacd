"""A large backlog drained (issue 13): is claim latency flat from the first job to the last?

    .venv/bin/python -m bench.backlog_bench                          # 100,000 jobs, PostgreSQL
    .venv/bin/python -m bench.backlog_bench --jobs 1000000 --stores postgres,sqlite \\
        --tag backlog-1m                                             # the full run (quiet machine)

The PostgreSQL server is ``BENCH_POSTGRES_URL`` (default the local one; this machine's
runs ``autovacuum = off``, see ``/etc/postgresql/15/main/conf.d/90-ci.conf``). To see
the drain as a production server runs it, point it at a server with the defaults, e.g.
``BENCH_POSTGRES_URL=postgresql://postgres@127.0.0.1:5499/postgres`` for a throwaway
cluster (``initdb`` + ``pg_ctl start -o "-p 5499"``). A full 1M run takes about 5 minutes
on two cores (load 45 s, drain about 4 minutes at ~4,000 jobs/s).

What it does, per store:
1. **Load** ``--jobs`` queued jobs fast. One job is submitted the normal way
   (``task.defer``: the row and its ``enqueued`` event exactly as the library writes
   them); the rest are copies of that row made by the database in one statement
   (``generate_series`` on PostgreSQL, a recursive CTE on SQLite) — every column copied,
   ids from the sequence, ``run_at``/``created_at`` one microsecond apart in id order as
   if enqueued one after another — each with its own ``enqueued`` event.
   PostgreSQL: then ``ANALYZE`` (what autovacuum does within a minute of such a load;
   this machine's server runs with ``autovacuum = off``, so nothing else would; see
   ``--no-analyze``).
2. **Drain** with real ``treadle worker`` processes (``--workers`` 2, ``--concurrency`` 8,
   every queue as the CLI's default, or ``--queues``) running a no-op task
   (``bench/apps/backlog_app.py``). Every worker logs each claim: the claim call's time
   (``store.claim``, round trips included) and the highest id it took, which places the
   claim in the backlog.
3. **Probe** (PostgreSQL) every ``--probe-interval`` (0.5 s) from a separate connection:
   the workers' claim statement (``claim_any``, or ``claim_queue`` with ``--queues``;
   limit 8, the workers' kinds) under
   ``EXPLAIN (ANALYZE, BUFFERS)`` in a transaction that is rolled back — its execution
   time, the buffers it touched (a count that does not move with machine load), the
   indexes it used — plus the table's dead tuples and the claim index's size.
4. **Report** per tenth of the backlog (by job id): claim call p50/p99 from the workers,
   jobs/s (from the jobs' ``started_at``), the probe's statement time and buffers, and
   the workers' and the database backends' CPU seconds per 1,000 jobs (from /proc, which
   holds under load where wall-clock figures do not); ``EXPLAIN`` of the claim statements
   before the drain and after it.

Results go to ``bench/results/<tag>.md`` and ``.json`` with the date, machine and load.
Wall-clock figures on a shared machine are noise; the buffers and CPU per job are not.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.backlog_load import load_postgres, load_sqlite, template
from bench.backlog_report import deciles, render
from bench.common import (
    REPO_ROOT,
    RESULTS_DIR,
    ProcGroup,
    fresh_pg_database,
    log,
    machine_info,
    write_results,
)

TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (and their reaped children), from /proc."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])
    return total / TICK


# ----------------------------------------------------------------------------- probing


def _pg_claim_params(kinds: list[str]) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {"worker": "backlog-probe", "now": now, "expires": now + dt.timedelta(seconds=30),
            "kinds": kinds, "suspect": False, "queue": "default", "limit": 8,
            "limited_ok": False}


def claim_statement(queues: str | None) -> str:
    """The statement the workers claim with: one queue named, or every queue."""
    return "claim_any" if queues is None else "claim_queue"


def _plan_indexes(node: dict[str, Any]) -> list[str]:
    """Every (node type, index) of a JSON plan, depth first."""
    out = []
    if "Index Name" in node:
        out.append(f"{node['Node Type']} {node['Index Name']}")
    elif node.get("Node Type") == "Seq Scan":
        out.append(f"Seq Scan {node.get('Relation Name')}")
    for child in node.get("Plans", []):
        out += _plan_indexes(child)
    return out


def _buffers(node: dict[str, Any]) -> int:
    return int(node.get("Shared Hit Blocks", 0)) + int(node.get("Shared Read Blocks", 0))


class PgProbe(threading.Thread):
    """Once a second: the claim statement under EXPLAIN ANALYZE (rolled back), dead
    tuples, index size, and the CPU of the workers and the database's backends."""

    def __init__(self, url: str, kinds: list[str], interval: float, worker_pids: list[int],
                 statement: str):
        super().__init__(daemon=True)
        self.url, self.kinds, self.interval = url, kinds, interval
        self.statement = statement
        self.worker_pids = worker_pids
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        import psycopg

        from treadle.store.postgres.store import Q

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.wait(self.interval):
                s: dict[str, Any] = {"t": time.time()}
                with contextlib.suppress(psycopg.errors.QueryCanceled,
                                         psycopg.errors.LockNotAvailable):
                    conn.execute("BEGIN")
                    try:
                        conn.execute("SET LOCAL lock_timeout = '2s'")
                        row = conn.execute(
                            b"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
                            + Q[self.statement].encode(),
                            _pg_claim_params(self.kinds)).fetchone()
                    finally:
                        conn.execute("ROLLBACK")
                    plan = (row[0] if row else [{}])[0]
                    s["exec_ms"] = plan.get("Execution Time")
                    s["buffers"] = _buffers(plan["Plan"])
                    s["indexes"] = sorted(set(_plan_indexes(plan["Plan"])))
                st = conn.execute(
                    "SELECT n_live_tup, n_dead_tup, autovacuum_count, autoanalyze_count, "
                    "pg_relation_size('treadle_jobs_claim') AS claim_idx, "
                    # The next job in claim order places this sample in the backlog.
                    "(SELECT id FROM treadle_jobs WHERE status = 'queued' AND queue = "
                    " 'default' ORDER BY priority DESC, run_at, id LIMIT 1) AS next_id "
                    "FROM pg_stat_user_tables WHERE relname = 'treadle_jobs'").fetchone()
                if st:
                    (s["live"], s["dead"], s["autovacuum"], s["autoanalyze"], s["claim_idx"],
                     s["next_id"]) = st
                pids = [r[0] for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()")]
                s["db_cpu"] = _cpu_seconds(pids)
                s["db_pids"] = pids
                s["worker_cpu"] = _cpu_seconds(self.worker_pids)
                self.samples.append(s)


def _pg_exec(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement.encode())


def _pg_setting(url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
    return str(row[0]) if row else "?"


def pg_explain(url: str, kinds: list[str]) -> dict[str, str]:
    """Plain EXPLAIN of the statements an idle-or-draining worker runs."""
    import psycopg

    from treadle.core.fairness import MAX_TENANTS
    from treadle.store.postgres.store import Q

    params = _pg_claim_params(kinds)
    plan_params = {**params, "queues": ["default"], "scan": 64, "keys": 8,
                   "max_tenants": MAX_TENANTS}
    out = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for name, p in (("claim_any", params), ("claim_queue", params),
                        ("claim_plan", plan_params), ("next_lease_expiry", {})):
            rows = conn.execute(b"EXPLAIN " + Q[name].encode(), p).fetchall()
            out[name] = "\n".join(r[0] for r in rows)
    return out


def sqlite_explain(path: str) -> dict[str, str]:
    from treadle.store.sqlite.store import Q

    conn = sqlite3.connect(path)
    out: dict[str, str] = {}
    try:
        for name in ("claim_queue", "claim_any", "claim_plan", "next_queued_run_at"):
            if name not in Q:
                continue
            try:
                rows = conn.execute("EXPLAIN QUERY PLAN " + Q[name],
                                    _sqlite_dummy_params(Q[name])).fetchall()
                out[name] = "\n".join(str(r[3]) for r in rows)
            except sqlite3.Error as exc:
                out[name] = f"(not explained: {exc})"
    finally:
        conn.close()
    return out


def _sqlite_dummy_params(q: str) -> dict[str, Any]:
    import re

    return {m: None for m in re.findall(r":(\w+)", q)} | {
        k: v for k, v in {"now": time.time(), "limit": 8, "queue": "default"}.items()
        if f":{k}" in q}


# ----------------------------------------------------------------------------- drain


def _workers(url: str, a: argparse.Namespace, logdir: Path, claim_log: Path) -> ProcGroup:
    env = {**os.environ, "TREADLE_DATABASE_URL": url, "TREADLE_BENCH_CLAIM_LOG": str(claim_log),
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "src")])}
    argv = [str(Path(sys.executable).with_name("treadle")), "worker", "--app",
            "bench.apps.backlog_app:app", "--db", url,
            "--concurrency", str(a.concurrency), "--log-level", "warning"]
    if a.queues is not None:
        argv += ["--queues", a.queues]
    group = ProcGroup()
    for i in range(a.workers):
        group.start(argv, env=env, cwd=REPO_ROOT, log_path=logdir / f"backlog-worker-{i}.log")
    return group


_LEFT = ("SELECT EXISTS (SELECT 1 FROM treadle_jobs WHERE status = 'queued') "
         "OR EXISTS (SELECT 1 FROM treadle_jobs WHERE status = 'running')")


def _left(store: str, url: str) -> bool:
    """Any job still queued or running (two partial-index looks)."""
    if store == "postgres":
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute(_LEFT).fetchone()
    else:
        conn2 = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
        try:
            row = conn2.execute(_LEFT).fetchone()
        finally:
            conn2.close()
    return bool(row and row[0])


def drain(store: str, a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        if store == "postgres":
            url = stack.enter_context(fresh_pg_database("treadle_backlog"))
        else:
            url = f"sqlite:///{tmp / 'backlog.db'}"
        app, kinds = template(url)
        stack.callback(app.close)
        log(f"{store}: loading {a.jobs:,} jobs ...")
        loaded = load_postgres(url, a.jobs) if store == "postgres" else \
            load_sqlite(url.removeprefix("sqlite:///"), a.jobs)
        log(f"{store}: loaded in {loaded['seconds']} s")
        if store == "postgres":
            loaded["autovacuum"] = _pg_setting(url, "autovacuum")
            if a.analyze:
                # What autovacuum's analyze does within a minute of such a load (this
                # machine's server runs with autovacuum off; --no-analyze shows the plans
                # the planner picks without statistics).
                _pg_exec(url, "ANALYZE treadle_jobs")
                _pg_exec(url, "ANALYZE treadle_queues")
        explain_before = pg_explain(url, kinds) if store == "postgres" else \
            sqlite_explain(url.removeprefix("sqlite:///"))
        claim_log = tmp / f"claims-{store}.log"
        claim_log.write_text("")
        load0 = os.getloadavg()
        t0 = time.time()
        group = _workers(url, a, tmp, claim_log)
        stack.callback(group.stop)
        probe = None
        if store == "postgres":
            probe = PgProbe(url, kinds, a.probe_interval, [p.pid for p in group.procs],
                            claim_statement(a.queues))
            probe.start()
        cpu_w = 0.0
        cpu_samples: list[tuple[float, float]] = []  # (time, workers' CPU seconds)
        while True:
            group.check_alive()
            cpu_w = _cpu_seconds([p.pid for p in group.procs])
            cpu_samples.append((time.time(), cpu_w))
            if not _left(store, url):
                break
            if time.time() - t0 > a.timeout:
                raise TimeoutError(f"drain not done after {a.timeout} s")
            time.sleep(0.5)
        t1 = time.time()
        load1 = os.getloadavg()
        if probe is not None:
            probe.stop.set()
            probe.join(10)
        group.stop()
        explain_after = pg_explain(url, kinds) if store == "postgres" else \
            sqlite_explain(url.removeprefix("sqlite:///"))
        starts = _start_times(app, store, url, loaded)
        statuses = _status_counts(store, url)
        claims = [ln.split() for ln in claim_log.read_text().splitlines() if ln.strip()]
    return {
        "store": store, "jobs": a.jobs, "workers": a.workers, "concurrency": a.concurrency,
        "queues": a.queues, "analyzed_after_load": a.analyze and store == "postgres",
        "claim_statement": claim_statement(a.queues) if store == "postgres" else None,
        "load": loaded, "drain_seconds": round(t1 - t0, 1),
        "jobs_per_s": round(a.jobs / (t1 - t0), 1),
        "worker_cpu_s_per_1000_jobs": round(cpu_w / a.jobs * 1000, 3),
        "loadavg_during": {"start": [round(x, 2) for x in load0],
                           "end": [round(x, 2) for x in load1]},
        "statuses": statuses,
        "deciles": deciles(loaded, claims, starts, probe.samples if probe else [],
                           cpu_samples),
        "explain_before": explain_before, "explain_after": explain_after,
        "probe_samples": len(probe.samples) if probe else 0,
        "probe_dead_tuples_max": max((s.get("dead", 0) for s in probe.samples), default=None)
        if probe else None,
        "probe_autovacuums": (probe.samples[-1].get("autovacuum") if probe and probe.samples
                              else None),
    }


def _status_counts(store: str, url: str) -> dict[str, int]:
    """How the jobs ended: every one should have succeeded (a lease that ran out under a
    live worker shows here as ``failed``)."""
    sql = "SELECT status, count(*) FROM treadle_jobs GROUP BY status ORDER BY status"
    if store == "postgres":
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            return {str(k): int(v) for k, v in conn.execute(sql).fetchall()}
    conn2 = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30)
    try:
        return {str(k): int(v) for k, v in conn2.execute(sql).fetchall()}
    finally:
        conn2.close()


def _start_times(app: Any, store: str, url: str, loaded: dict[str, Any]) -> list[tuple[int, float]]:
    """(decile, started_at) bounds per decile: min and max start time of each tenth."""
    span = loaded["last_id"] - loaded["first_id"] + 1
    if store == "postgres":
        import psycopg

        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT least(9, (id - %(f)s) * 10 / %(s)s) AS d, count(*), "
                "extract(epoch FROM min(started_at)), extract(epoch FROM max(started_at)) "
                "FROM treadle_jobs WHERE id >= %(f)s GROUP BY 1 ORDER BY 1",
                {"f": loaded["first_id"], "s": span}).fetchall()
    else:
        conn2 = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            rows = conn2.execute(
                "SELECT min(9, (id - ?) * 10 / ?) AS d, count(*), min(started_at), "
                "max(started_at) FROM treadle_jobs WHERE id >= ? GROUP BY 1 ORDER BY 1",
                (loaded["first_id"], span, loaded["first_id"])).fetchall()
        finally:
            conn2.close()
    return [(int(d), int(n), float(lo), float(hi)) for d, n, lo, hi in rows]  # type: ignore[misc]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=100_000)
    p.add_argument("--stores", default="postgres")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--probe-interval", type=float, default=0.5)
    p.add_argument("--timeout", type=float, default=7200.0)
    p.add_argument("--queues", default=None,
                   help="the workers' --queues (default: every queue, as the CLI)")
    p.add_argument("--no-analyze", dest="analyze", action="store_false",
                   help="PostgreSQL: leave the loaded table without statistics")
    p.add_argument("--tag", default="backlog")
    a = p.parse_args()
    res: dict[str, Any] = {"tag": a.tag, "when": dt.datetime.now(dt.UTC).isoformat(
        timespec="seconds"), "machine": machine_info(),
        "command": "python -m bench.backlog_bench " + " ".join(sys.argv[1:]), "runs": []}
    with tempfile.TemporaryDirectory() as d:
        for store in a.stores.split(","):
            r = drain(store, a, Path(d))
            log(f"{store}: {r['jobs_per_s']} jobs/s; " + ", ".join(
                f"{x['decile']}: {x.get('claim_p50_ms')}/{x.get('claim_p99_ms')} ms"
                for x in r["deciles"]))
            res["runs"].append(r)
    res["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_results(RESULTS_DIR / a.tag, res, render(res))


if __name__ == "__main__":
    main()

