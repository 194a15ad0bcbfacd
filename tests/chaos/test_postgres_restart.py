"""PostgreSQL restarted under running workers: no job lost, workers carry on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.acceptance.conftest import Workers, wait_until
from tests.acceptance.test_workers import completed_event_counts
from tests.support.pg import Cluster, with_db
from treadle import Treadle
from treadle.testing import migrated


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    c.start()
    yield c
    c.destroy()


@pytest.mark.slow
def test_postgres_restart_mid_run_loses_nothing(cluster: Cluster, tmp_path: Path) -> None:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE chaos")
    url = with_db(cluster.url, "chaos")
    app = Treadle(migrated(url))  # the core schema and the built-in kinds' (workers check)
    from tests.acceptance.app import sleep

    ids = [h.id for h in app.enqueue([sleep.new_job({"seconds": 0.01}) for _ in range(3000)])]
    workers = Workers(url, tmp_path)
    procs = [workers.start(concurrency=4) for _ in range(2)]
    try:
        wait_until(lambda: app.store.count_by_status().get("succeeded", 0) > 300, 60,
                   "progress before the restart")
        cluster.restart()
        wait_until(lambda: _succeeded(app) == 3000, 180, "all jobs after the restart")
        assert all(p.poll() is None for p in procs), "a worker died with the database"
    finally:
        workers.stop_all()
    logs = "".join(f.read_text() for f in tmp_path.glob("worker-*.log"))
    assert "retrying" in logs, "the restart should have been felt by the workers"
    counts = completed_event_counts(url)
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    app.close()


def _succeeded(app: Treadle) -> int:
    try:
        return app.store.count_by_status().get("succeeded", 0)
    except Exception:  # the test's own connection may be mid-reconnect
        return -1
