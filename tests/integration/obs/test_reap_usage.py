"""Usage rows of attempts the reaper ends (ADR 0022): written with the reap's guarded
update, on real SQLite and real PostgreSQL, timed by the injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from treadle.core.job import NewJob
from treadle.store import Outcome, OutcomeKind, Store, open_store
from treadle.store.postgres.store import PostgresStore
from treadle.store.usage import UsageReader
from treadle.testing import ManualClock
from treadle.ui.queries import series


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(db_url: str, clock: ManualClock) -> Iterator[Store]:
    s = open_store(db_url, clock=clock)
    yield s
    s.close()


def _claim(store: Store, lease: float) -> Any:
    jobs = store.claim(queues=None, worker="w1", limit=1, lease_seconds=lease)
    assert len(jobs) == 1
    return jobs[0]


def _read_expired(store: Store) -> list[Any]:
    """The reaper's first step alone: the expired rows as it reads them, so a test can let
    the job move on before the guarded write (a reap that loses the race)."""
    s: Any = store
    now = store.clock.now()  # type: ignore[attr-defined]
    if isinstance(store, PostgresStore):
        from treadle.store.postgres.store import Q as PQ
        with s._cursor(tx=True) as cur:
            cur.execute(PQ["expired_leases"], {"now": now, "limit": 10})
            return list(cur.fetchall())
    from treadle.store.sqlite.store import Q as SQ
    with s._tx() as conn:
        return list(conn.execute(SQ["expired_leases"],
                                 {"now": now.timestamp(), "limit": 10}).fetchall())


def _reap_rows(store: Store, rows: list[Any]) -> Any:
    s: Any = store
    now = store.clock.now()  # type: ignore[attr-defined]
    if isinstance(store, PostgresStore):
        with s._cursor(tx=True) as cur:
            return s._reap_rows(cur, rows, now, seen_dead=False)
    with s._tx() as conn:
        return s._reap_rows(conn, rows, now, seen_dead=False)


def test_a_reaped_attempt_has_one_usage_row_and_is_charted(
    store: Store, clock: ManualClock
) -> None:
    store.enqueue([NewJob(task="t", queue="q1", tenant="acme", max_attempts=1)])
    job = _claim(store, lease=5)
    clock.advance(7.5)
    # The worker lives on (heartbeats) but let this lease lapse: the attempt is used up.
    store.heartbeat(worker="w1", leases=[], lease_seconds=5)
    assert store.reap().failed == 1
    assert store.reap().failed == 0  # nothing left: no second row either
    rows = UsageReader(store).attempts(job.id)
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["attempt"], row["tenant"], row["queue"], row["task"]) == (1, "acme", "q1", "t")
    assert (row["outcome"], row["error_class"]) == ("failed", "lease_lost")
    assert row["wall_seconds"] == pytest.approx(7.5, abs=1e-3)
    assert row["finished_at"] == clock.now()
    assert row["cpu_seconds"] is None and row["peak_memory_bytes"] is None
    assert row["wait_seconds"] is None
    assert (row["result_bytes"], row["log_bytes"], row["tokens_in"], row["cost_usd"]) == (
        0, 0, 0, 0)
    chart = series(store, tenant="acme", window="1h", now=clock.now())
    assert sum(chart.failed) == 1 and sum(chart.succeeded) == 0
    assert chart.error_classes == {"lease_lost": chart.failed}
    assert [p for p in chart.p50 if p is not None] == [pytest.approx(7500, abs=1)]
    assert sum(series(store, tenant="other", window="1h", now=clock.now()).failed) == 0
    summary = UsageReader(store).summary(start=clock.now() - timedelta(hours=1),
                                         end=clock.now() + timedelta(seconds=1),
                                         group_by="queue")
    assert [(u.group, u.attempts, u.failed) for u in summary] == [("q1", 1, 1)]


def test_crashed_attempts_are_retry_then_quarantined_rows_one_per_attempt(
    store: Store, clock: ManualClock
) -> None:
    store.enqueue([NewJob(task="t", max_attempts=3, max_crashes=2)])
    job = _claim(store, lease=5)
    clock.advance(6)  # no heartbeat ever: its worker died, the job goes back as a suspect
    assert store.reap().requeued == 1
    first = UsageReader(store).attempts(job.id)
    assert [(r["attempt"], r["outcome"]) for r in first] == [(1, "retry")]
    assert first[0]["wall_seconds"] == pytest.approx(6, abs=1e-3)
    # A re-queued attempt did not end its job: not in the charts' counts.
    assert sum(series(store, tenant=None, window="1h", now=clock.now()).failed) == 0
    again = store.claim(queues=None, worker="w2", limit=1, lease_seconds=5, suspect=True)[0]
    assert again.attempt == 2
    clock.advance(5.5)  # and its second worker dies too: this crash quarantines it
    assert store.reap().quarantined == 1
    rows = UsageReader(store).attempts(job.id)
    assert [(r["attempt"], r["outcome"]) for r in rows] == [(1, "retry"), (2, "quarantined")]
    assert rows[1]["wall_seconds"] == pytest.approx(5.5, abs=1e-3)


def test_a_reap_that_loses_the_race_writes_no_usage(store: Store, clock: ManualClock) -> None:
    store.enqueue([NewJob(task="t", max_attempts=1)])
    job = _claim(store, lease=5)
    clock.advance(6)
    rows = _read_expired(store)
    assert [r["id"] for r in rows] == [job.id]
    # Before the reaper writes, the worker's late outcome lands (it carries no usage, so
    # any row afterwards could only be the reaper's).
    assert store.complete([Outcome(job.id, job.lease_token, OutcomeKind.SUCCEEDED, "w1")]
                          ) == [True]
    res = _reap_rows(store, rows)
    assert (res.failed, res.requeued, res.quarantined) == (0, 0, 0)
    assert UsageReader(store).attempts(job.id) == []
    assert sum(series(store, tenant=None, window="1h", now=clock.now()).failed) == 0
