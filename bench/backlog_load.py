"""Loading a backlog for ``bench/backlog_bench.py``: one job submitted the normal way,
then copied by the database into as many as asked, each with its ``enqueued`` event."""

from __future__ import annotations

import sqlite3
import time
from typing import Any


def template(url: str) -> tuple[Any, list[str]]:
    """Migrate, submit one job the normal way; the app and the worker's kinds."""
    from bench.apps.noop_tasks import build_app
    from bench.treadle_side import migrate_for_workers

    app = build_app(url)
    migrate_for_workers(app)
    app.tasks["noop"].defer()
    kinds = sorted(k.value for k in app.executors())
    return app, kinds


def load_postgres(url: str, n: int) -> dict[str, Any]:
    import psycopg
    from psycopg import sql

    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        cols = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'treadle_jobs' AND column_name NOT IN "
            "('id', 'run_at', 'created_at') ORDER BY ordinal_position")]
        tid = conn.execute("SELECT min(id) FROM treadle_jobs").fetchone()[0]  # type: ignore[index]
        ident = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
        with conn.transaction():
            # The template goes to the end: n - 1 copies before it, in id order.
            conn.execute(sql.SQL(
                "INSERT INTO treadle_jobs ({cols}, run_at, created_at) "
                "SELECT {cols}, t.run_at - (%(n)s - g) * interval '1 microsecond', "
                "t.created_at - (%(n)s - g) * interval '1 microsecond' "
                "FROM treadle_jobs t, generate_series(1, %(n)s - 1) g WHERE t.id = %(id)s "
                "ORDER BY g").format(cols=ident), {"n": n, "id": tid})
            conn.execute(
                "INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, "
                "reason, at) SELECT id, NULL, 'queued', 0, NULL, 'enqueued', created_at "
                "FROM treadle_jobs WHERE id > %(id)s ORDER BY id", {"id": tid})
            # The template last, so claim order (priority, run_at, id) is id order.
            conn.execute("UPDATE treadle_jobs SET run_at = run_at + interval '1 microsecond' "
                         "WHERE id = %(id)s", {"id": tid})
        first, last = conn.execute("SELECT min(id), max(id) FROM treadle_jobs").fetchone()  # type: ignore[misc]
    return {"seconds": round(time.perf_counter() - t0, 1), "first_id": first, "last_id": last,
            "template_id": tid}


def load_sqlite(path: str, n: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(treadle_jobs)")
                if r[1] not in ("id", "run_at", "created_at")]
        tid = conn.execute("SELECT min(id) FROM treadle_jobs").fetchone()[0]
        ident = ", ".join(f'"{c}"' for c in cols)  # names read from the schema itself
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            f"WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ? - 1) "
            f"INSERT INTO treadle_jobs ({ident}, run_at, created_at) "
            f"SELECT {ident}, t.run_at - (? - g.i) * 1e-6, t.created_at - (? - g.i) * 1e-6 "
            f"FROM treadle_jobs t, g WHERE t.id = ? ORDER BY g.i", (n, n, n, tid))
        conn.execute(
            "INSERT INTO treadle_events (job_id, from_status, to_status, attempt, worker, "
            "reason, at) SELECT id, NULL, 'queued', 0, NULL, 'enqueued', created_at "
            "FROM treadle_jobs WHERE id > ? ORDER BY id", (tid,))
        conn.execute("UPDATE treadle_jobs SET run_at = run_at + 1e-6 WHERE id = ?", (tid,))
        conn.execute("COMMIT")
        first, last = conn.execute("SELECT min(id), max(id) FROM treadle_jobs").fetchone()
    finally:
        conn.close()
    return {"seconds": round(time.perf_counter() - t0, 1), "first_id": first, "last_id": last,
            "template_id": tid}
