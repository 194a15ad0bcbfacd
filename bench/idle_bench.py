"""Idle cost per worker (issue 13): database statements per second while no work exists.

    .venv/bin/python -m bench.idle_bench --seconds 30 --tag after   # -> bench/results/

Each worker is the CLI's (``build_worker``: the app's plug-ins and services, the workflow
waker included, default settings, ``--concurrency 8``), run in this process on its own
app and store so every statement it sends can be counted (``bench/statement_count.py``),
on SQLite (a fresh file) and PostgreSQL (a fresh database). After a warm-up the count is
taken over ``--seconds`` and broken down by statement. ``handoff_bench --parts idle``
measures the same from outside on PostgreSQL (``pg_stat_database`` transactions).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.apps.append_tasks import build_app
from bench.common import RESULTS_DIR, fresh_pg_database, log, machine_info, write_results
from bench.statement_count import counting_statements
from treadle import Treadle
from treadle.cli.run import build_worker
from treadle.worker import WorkerConfig


@contextlib.contextmanager
def _database(store: str, tmp: Path) -> Iterator[str]:
    if store == "sqlite":
        yield f"sqlite:///{tmp / 'idle.db'}"
    else:
        with fresh_pg_database("treadle_idle") as url:
            yield url


def measure(store: str, n: int, warmup: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d, _database(store, Path(d)) as url:
        setup = build_app(url)
        setup.migrate()
        setup.close()
        with counting_statements() as count:
            apps: list[Treadle] = []
            workers, threads = [], []
            for _ in range(n):
                app = build_app(url)

                @app.workflow(name="idle_wf")
                def idle_wf(ctx: Any) -> None:  # registers the workflow kind and its waker
                    return None

                apps.append(app)
                w = build_worker(app, WorkerConfig(concurrency=8))
                workers.append(w)
                threads.append(threading.Thread(target=w.run, daemon=True))
            for t in threads:
                t.start()
            time.sleep(warmup)
            c0, t0 = count.snapshot(), time.monotonic()
            time.sleep(seconds)
            c1, t1 = count.snapshot(), time.monotonic()
            for w in workers:
                w.stop()
            for t in threads:
                t.join(30)
            for app in apps:
                app.close()
    secs = t1 - t0
    diff = c1 - c0
    return {
        "store": store, "workers": n, "seconds": round(secs, 1),
        "statements_per_s_per_worker": round(sum(diff.values()) / secs / n, 3),
        "by_statement_per_s": {k: round(v / secs / n, 3) for k, v in diff.most_common()},
    }


def render(res: dict[str, Any]) -> str:
    out = [f"# Idle cost per worker ({res['tag']})", "",
           f"{res['when']}; load at start {res['machine']['loadavg_at_start']}, "
           f"at end {res['loadavg_at_end']}; warm-up {res['warmup']} s, window {res['seconds']} s.",
           "", "| store | workers | statements/s per worker |", "| --- | --- | --- |"]
    out += [f"| {r['store']} | {r['workers']} | {r['statements_per_s_per_worker']} |"
            for r in res["runs"]]
    for r in res["runs"]:
        out += ["", f"### {r['store']}, {r['workers']} worker(s): per second per worker", ""]
        out += [f"- {v} `{k}`" for k, v in r["by_statement_per_s"].items()]
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--stores", default="sqlite,postgres")
    p.add_argument("--workers", default="1,4")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--tag", default="idle")
    a = p.parse_args()
    res: dict[str, Any] = {"tag": a.tag, "when": dt.datetime.now(dt.UTC).isoformat(
        timespec="seconds"), "machine": machine_info(), "warmup": a.warmup,
        "seconds": a.seconds, "runs": []}
    for store in a.stores.split(","):
        for n in [int(x) for x in a.workers.split(",")]:
            log(f"{store}: {n} idle worker(s) ...")
            r = measure(store, n, a.warmup, a.seconds)
            log(f"{store} x{n}: {r['statements_per_s_per_worker']}/s per worker")
            res["runs"].append(r)
    res["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_results(RESULTS_DIR / a.tag, res, render(res))


if __name__ == "__main__":
    main()
