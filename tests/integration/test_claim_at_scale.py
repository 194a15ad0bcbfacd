"""A claim reads the claim order's index however many jobs wait (issue 13, the backlog
bench): with a large analyzed backlog the planner must not trade the ordered index scan
for reading every queued row and sorting it (``bench/results/backlog.md``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from treadle.core.job import NewJob
from treadle.store.postgres.store import PostgresStore, Q
from treadle.testing import ManualClock

BACKLOG = 20_000


@pytest.fixture
def backlog(pg_url: str) -> Iterator[str]:
    store = PostgresStore(pg_url, clock=ManualClock())
    try:
        for _ in range(BACKLOG // 5_000):
            store.enqueue([NewJob(task="t", queue="q1") for _ in range(5_000)])
    finally:
        store.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ANALYZE treadle_jobs")  # what autovacuum does after such a load
    yield pg_url


def _plan(url: str, name: str, params: dict[str, Any]) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(b"EXPLAIN " + Q[name].encode(), params).fetchall()
    return "\n".join(r[0] for r in rows)


def _params(kinds: list[str] | None) -> dict[str, Any]:
    now = ManualClock().now()
    return {"worker": "w", "now": now, "expires": now + timedelta(seconds=30),
            "kinds": kinds, "suspect": False, "limit": 8, "queue": "q1",
            "limited_ok": False}


@pytest.mark.parametrize("kinds", [None, ["task", "workflow"]])
@pytest.mark.parametrize("name", ["claim_any", "claim_queue"])
def test_a_claim_reads_the_claim_index_not_every_queued_job(
    backlog: str, name: str, kinds: list[str] | None
) -> None:
    plan = _plan(backlog, name, _params(kinds))
    assert "Seq Scan on treadle_jobs" not in plan, plan
    assert "Sort" not in plan, plan  # the index gives the claim order: nothing to sort
    assert "treadle_jobs_claim" in plan, plan
