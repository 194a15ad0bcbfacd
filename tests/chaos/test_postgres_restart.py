"""PostgreSQL restarted under workers and producers: no job lost, every caller carries on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.acceptance.conftest import ROOT, Workers, wait_until
from tests.acceptance.test_workers import completed_event_counts
from tests.support.pg import Cluster, with_db
from treadle import Treadle
from treadle.core.errors import StoreUnavailable
from treadle.core.job import NewJob
from treadle.store import Outcome, OutcomeKind
from treadle.store.postgres.retry import Reconnect, ReconnectPolicy
from treadle.store.postgres.store import PostgresStore
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
    # Felt by the workers: whichever store call the restart hit (a claim, the look for
    # suspects, outcomes, maintenance) logged its failure; which one is a matter of timing.
    assert re.search(r"\b(retrying|failed)\b", logs), \
        "the restart should have been felt by the workers"
    counts = completed_event_counts(url)
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    app.close()


def _succeeded(app: Treadle) -> int:
    try:
        return app.store.count_by_status().get("succeeded", 0)
    except Exception:  # the test's own connection may be mid-reconnect
        return -1


class Producer:
    """``tests/chaos/producer.py`` in its own process, as a user's producer would run."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos.producer", url], cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, "the producer exited"
        answer: dict[str, Any] = json.loads(line)
        assert "error" not in answer, answer["error"]
        return answer

    def ask(self, line: str) -> dict[str, Any]:
        self.send(line)
        return self.answer()

    def finish(self) -> str:
        """Close its input, wait for it to exit cleanly, return what it wrote to stderr."""
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err
        return err


def _chaos_db(cluster: Cluster) -> str:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE chaos")
    url = with_db(cluster.url, "chaos")
    store = PostgresStore(url)
    store.migrate()
    store.close()
    return url


@pytest.mark.slow
def test_a_producer_rides_out_restarts_and_an_outage_without_noise(cluster: Cluster) -> None:
    url = _chaos_db(cluster)
    producer = Producer(url)
    first = producer.ask("defer")["id"]
    assert producer.ask(f"get {first}") == {"status": "queued"}

    # Every pooled connection of the producer dies with the server.
    cluster.restart()
    assert producer.ask(f"get {first}") == {"status": "queued"}
    second = producer.ask("defer")["id"]

    # A wait that spans a restart; a worker (here: this test) then finishes the job.
    producer.send(f"wait {first}")
    assert producer.answer() == {"waiting": first}
    cluster.restart()
    worker = PostgresStore(url)
    claimed = worker.claim(queues=None, worker="t", limit=10, lease_seconds=30)
    target = next(j for j in claimed if j.id == first)
    assert worker.complete([Outcome(first, target.lease_token, OutcomeKind.SUCCEEDED, "t")])
    assert producer.answer() == {"status": "succeeded"}
    worker.close()

    # The server is down while a read and an enqueue are in flight; both finish once it
    # is back (the pause only makes sure both calls start during the outage).
    cluster.stop("immediate")
    producer.send(f"get {second}")
    producer.send("defer")
    time.sleep(1.0)
    cluster.start()
    assert producer.answer() == {"status": "running"}
    third = producer.answer()["id"]
    assert third > second

    assert producer.finish() == "", "the producer printed to stderr"


@pytest.mark.slow
def test_reads_give_up_with_store_unavailable_at_the_deadline(cluster: Cluster) -> None:
    url = _chaos_db(cluster)
    store = PostgresStore(url, reconnect=Reconnect(ReconnectPolicy(deadline=2.0)))
    job = store.enqueue([NewJob(task="t")])[0].job
    cluster.stop("immediate")
    start = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unreachable for 2s"):
        store.get_job(job.id)
    elapsed = time.monotonic() - start
    assert 2.0 <= elapsed < 8.0  # the deadline, plus at most one connect timeout
    store.close()
