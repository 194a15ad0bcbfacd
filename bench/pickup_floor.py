"""The physical reference for a PostgreSQL pickup (issue 13): no queue at all, only what
any durable hand-over through PostgreSQL pays on this machine.

    .venv/bin/python -m bench.pickup_floor --jobs 300        # prints p50/p99, ms

The producer (this process, psycopg, a prepared statement) inserts one row with
``synchronous_commit`` on and, in the same statement, sends the row as a notification;
a listener process sits in ``select()`` on a ``LISTEN``ing connection, parses the row and
hands it to a thread through a ``queue.Queue``, which takes the time: the shape of
Treadle's hand-off (ADR 0034) without any of Treadle. One job every ``--interval`` s, as
the hand-off bench's latency part, so both pay the same wake-ups after idling.
``bench/handoff_bench.py`` runs it beside Treadle and the peers as ``floor-postgres``.
"""

from __future__ import annotations

import argparse
import json
import queue
import select
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import fresh_pg_database, latency_summary, wait_until

_CHANNEL = "floor_handoff"
_TABLE = """CREATE TABLE floor_jobs (
    id bigserial PRIMARY KEY, payload jsonb NOT NULL, status text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now())"""
_HAND = f"""WITH ins AS (
    INSERT INTO floor_jobs (payload, status) VALUES (%s::jsonb, 'running') RETURNING *)
SELECT pg_notify('{_CHANNEL}', row_to_json(ins)::text) FROM ins"""


def listen(url: str, path: str) -> None:
    """The listener process: one line ``i enqueued started`` per row received."""
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    conn.execute(f"LISTEN {_CHANNEL}")
    handed: queue.Queue[dict[str, Any]] = queue.Queue()
    out = open(path, "a", buffering=1)  # noqa: SIM115 (lives as long as the process)

    def run() -> None:
        while True:
            row = handed.get()
            started = time.time()
            out.write(f"{row['payload']['i']} {row['payload']['enqueued']!r} {started!r}\n")

    threading.Thread(target=run, daemon=True).start()
    pg = conn.pgconn
    print("listening", flush=True)
    while True:
        select.select([conn.fileno()], [], [])
        pg.consume_input()
        while (note := pg.notifies()) is not None:
            handed.put(json.loads(note.extra))


def _lines(path: Path) -> list[tuple[int, float, float]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        i, e, s = line.split()
        out.append((int(i), float(e), float(s)))
    return out


def run(jobs: int, interval: float, tmp: Path) -> dict[str, Any]:
    """Enqueue→start of ``jobs`` hand-overs (after 20 warm-up ones), as latency_summary."""
    import psycopg

    path = tmp / f"floor-{time.monotonic_ns()}.txt"
    with fresh_pg_database("treadle_floor") as url, \
            psycopg.connect(url, autocommit=True) as conn:
        conn.execute(_TABLE)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.pickup_floor", "--listen", url, str(path)],
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
            for i in range(-20, jobs):
                payload = json.dumps({"i": i, "enqueued": time.time()})
                conn.execute(_HAND, (payload,), prepare=True)
                time.sleep(interval)
            wait_until(lambda: len(_lines(path)) >= jobs + 20, timeout=60,
                       what="floor hand-overs")
        finally:
            proc.kill()
            proc.wait()
    samples = [(s - e) * 1000 for i, e, s in _lines(path) if i >= 0]
    return {"enqueue_to_start": latency_summary(samples), "interval_s": interval}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pickup_floor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", nargs=2, metavar=("URL", "PATH"), help=argparse.SUPPRESS)
    p.add_argument("--jobs", type=int, default=300)
    p.add_argument("--interval", type=float, default=0.02)
    a = p.parse_args(argv)
    if a.listen:
        listen(*a.listen)
        return 0
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        r = run(a.jobs, a.interval, Path(d))["enqueue_to_start"]
    print(f"floor-postgres enqueue→start p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
